"""Codebook analysis: usage, geometry, codes vs tissue, appearance -- on hand-made examples."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from vqvae_lib.codebook import analysis as cb
from vqvae_lib.model.inference import encode, reconstruct


class ToyVQ(nn.Module):
    """A 'VQ-VAE' we can reason about: a cell's code is its mean intensity rounded to K levels,
    and decoding paints each cell with its code's level."""

    def __init__(self, K=4, f=4):
        super().__init__()
        self.K, self.f = K, f
        self.levels = nn.Parameter(torch.linspace(0, 1, K)[:, None])   # (K, 1) codebook
        self.quantizer = SimpleNamespace(codebook=self.levels)

    def encode(self, x):
        cell = nn.functional.avg_pool2d(x, self.f)[:, 0]                 # (B, h, w)
        return (cell * (self.K - 1)).round().long()

    def decode_codes(self, codes):
        img = self.levels[codes, 0][:, None]                             # (B, 1, h, w)
        return nn.functional.interpolate(img, scale_factor=self.f, mode="nearest")


def test_usage_perplexity_and_dead_codes():
    codes = torch.tensor([[0, 0], [1, 1]])
    u = cb.codebook_usage(codes, 4)
    assert u.counts.tolist() == [2, 2, 0, 0]
    assert u.perplexity == pytest.approx(2.0)          # two codes, equally used
    assert u.used == 2 and u.dead.tolist() == [2, 3]
    assert u.order[:2].tolist() == [0, 1]
    assert 2 ** cb.entropy_bits([5, 0, 0]) == pytest.approx(1.0)   # collapse: one code
    assert 2 ** cb.entropy_bits([1] * 8) == pytest.approx(8.0)
    # 3 : 1 split -> H = 0.811 bits -> perplexity 2 ** 0.811
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert 2 ** cb.entropy_bits([3, 1]) == pytest.approx(2 ** h)
    assert cb.coverage_curve([1, 3, 0]).tolist() == pytest.approx([0.75, 1.0, 1.0])
    with pytest.raises(ValueError):
        cb.usage_counts(torch.tensor([0, 4]), 4)


def test_tissue_fractions_per_cell():
    masks = np.zeros((1, 4, 4), np.uint8)
    masks[0, :2, :2] = 3          # top-left cell: all white matter
    masks[0, 2:, 2:] = [[1, 2], [2, 2]]   # bottom-right: 1/4 CSF, 3/4 grey
    frac = cb.tissue_fractions(masks, downsample=2)
    assert frac.shape == (1, 2, 2, 4)
    assert frac[0, 0, 0].tolist() == [0, 0, 0, 1]
    assert frac[0, 1, 1].tolist() == [0, 0.25, 0.75, 0]
    assert frac[0, 0, 1].tolist() == [1, 0, 0, 0]
    assert np.allclose(frac.sum(-1), 1)
    with pytest.raises(ValueError):
        cb.tissue_fractions(np.zeros((1, 5, 5), np.uint8), downsample=2)


def test_mutual_information_known_answers():
    # code determines tissue, two equally likely tissues -> I = H(tissue) = 1 bit
    assert cb.mutual_information_bits([[5, 0], [0, 5]]) == pytest.approx(1.0)
    # independent -> 0 bits
    assert cb.mutual_information_bits([[1, 3], [2, 6]]) == pytest.approx(0.0, abs=1e-12)
    # by hand: p = [[.5, 0], [.25, .25]]; I = .5 log2(.5/(.5*.75)) + 2 * .25 log2(.25/(.5*.25))
    expected = 0.5 * math.log2(0.5 / 0.375) + 0.25 * math.log2(0.25 / 0.125) \
        + 0.25 * math.log2(0.25 / 0.375)
    assert cb.mutual_information_bits([[2, 0], [1, 1]]) == pytest.approx(expected)


def test_code_tissue_purity_and_mi():
    # 1 slice, 2x2 latent grid, cells 2x2 pixels. Code 0 on two pure-background cells,
    # code 1 on one white and one half-CSF/half-grey cell; code 2 dead.
    masks = np.zeros((1, 4, 4), np.uint8)
    masks[0, 2:, :2] = 3
    masks[0, 2:, 2:] = [[1, 1], [2, 2]]
    codes = torch.tensor([[[0, 0], [1, 1]]])
    ct = cb.code_tissue(codes, masks, codebook_size=3, downsample=2)
    assert ct.table.tolist() == [[2, 0, 0, 0], [0, 0.5, 0.5, 1], [0, 0, 0, 0]]
    assert ct.purity[0] == pytest.approx(1.0) and ct.purity[1] == pytest.approx(0.5)
    assert np.isnan(ct.purity[2]) and ct.dominant.tolist() == [0, 3, -1]
    assert ct.mean_purity == pytest.approx((2 + 1) / 4)
    assert ct.baseline_purity == pytest.approx(0.5)       # background is half of all pixels
    # H(tissue) of [.5, .125, .125, .25] = 1.75 bits; H(tissue | code) = .5 * 0 + .5 * 1.5
    assert ct.tissue_entropy_bits == pytest.approx(1.75)
    assert ct.mi_bits == pytest.approx(1.75 - 0.75)
    assert "bits" in ct.summary()
    with pytest.raises(ValueError):
        cb.code_tissue(codes[:, :1], masks, 3, 2)


def test_geometry_distances_and_pca():
    book = torch.tensor([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]])
    d = cb.pairwise_distances(book)
    assert d[0, 1] == pytest.approx(5) and d[0, 2] == pytest.approx(10) and d[1, 1] == 0
    coords, explained = cb.pca_2d(book)      # points on a line: one axis explains everything
    assert explained[0] == pytest.approx(1.0)
    assert abs(coords[2, 0] - coords[0, 0]) == pytest.approx(10)
    assert np.allclose(coords[:, 1], 0, atol=1e-9)


def test_encode_decode_and_constant_codes_with_toy_model():
    model = ToyVQ(K=4, f=4)
    x = torch.zeros(2, 1, 8, 8)
    x[0, :, :4, :4] = 1.0                     # one bright cell -> code 3
    recons, codes = reconstruct(model, x, batch_size=1)
    assert codes.shape == (2, 2, 2) and codes[0, 0, 0] == 3 and codes.sum() == 3
    assert torch.equal(recons, x)             # the toy model reconstructs these perfectly
    assert torch.equal(encode(model, x), codes)
    const = cb.decode_constant_codes(model, [0, 3], latent_size=2)
    assert const.shape == (2, 1, 8, 8)
    assert const[0].max() == 0 and const[1].min() == 1


def test_patches_locations_and_swap():
    model = ToyVQ(K=4, f=4)
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 4:, 4:] = 1.0
    codes = encode(model, x)            # [[0, 0], [0, 3]]
    assert cb.code_locations(codes, 3).tolist() == [[0, 1, 1]]
    patches, locs = cb.code_patches(x, codes, 3, downsample=4, patch=4)
    assert patches.shape == (1, 4, 4) and np.allclose(patches, 1.0)   # the cell itself
    wide, _ = cb.code_patches(x, codes, 3, downsample=4, patch=12)
    assert wide[0, -1, -1] == 0 and wide[0, 6, 6] == 1             # zero padding past the edge
    many, locs = cb.code_patches(x, codes, 0, downsample=4, max_patches=2)
    assert len(many) == 2 and len(locs) == 2
    new, changed = cb.swap_code(codes[0], 3, 1)
    assert changed.sum() == 1 and new[1, 1] == 1 and codes[0, 1, 1] == 3   # input untouched
    before, after, ch = cb.swap_effect(model, codes[0], 3, 1)
    assert before[6, 6] == pytest.approx(1.0) and after[6, 6] == pytest.approx(1 / 3)
    assert after[0, 0] == before[0, 0] and ch.sum() == 1


def test_real_smoke_model_shapes():
    model_mod = pytest.importorskip("vqvae_lib.model.vqvae")
    from vqvae_lib.config import get_config

    cfg = get_config("smoke")
    torch.manual_seed(0)
    model = model_mod.build_model(cfg).eval()
    x = torch.rand(3, 1, cfg.image_size, cfg.image_size)
    recons, codes = reconstruct(model, x)
    h = cfg.latent_size
    assert codes.shape == (3, h, h) and recons.shape == x.shape
    assert 0 <= recons.min() and recons.max() <= 1
    book = cb.codebook_vectors(model)
    assert book.shape == (cfg.codebook_size, cfg.code_dim)
    const = cb.decode_constant_codes(model, [0, 1], h)
    assert const.shape == (2, 1, cfg.image_size, cfg.image_size)
    before, after, changed = cb.swap_effect(model, codes[0], int(codes[0, 0, 0]), 0)
    assert before.shape == (cfg.image_size, cfg.image_size) and changed[0, 0]


def _toy_analysis(n=6, size=16, K=4):
    """Slices whose tissue labels equal their intensity level: codes should carry all of it."""
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 4, (n, size // 4, size // 4), generator=g)
    masks = masks.repeat_interleave(4, 1).repeat_interleave(4, 2).numpy().astype(np.uint8)
    images = torch.tensor(masks / 3.0, dtype=torch.float32)[:, None]      # (N, 1, H, W)
    return cb.analyse_codebook(ToyVQ(K=K, f=4), images, masks)


def test_analysis_recovers_a_perfect_code_tissue_map():
    A = _toy_analysis()
    assert A.codes.shape == (6, 4, 4) and A.downsample == 4 and A.latent_size == 4
    assert A.tissue.mi_bits == pytest.approx(A.tissue.tissue_entropy_bits)
    assert A.tissue.mean_purity == pytest.approx(1.0)
    assert A.tissue.dominant.tolist() == [0, 1, 2, 3]
    assert A.decoded(2).shape == (16, 16) and A.decoded(2).max() == pytest.approx(2 / 3)
    a, b = cb.suggest_swap(A, 0)                    # white matter -> CSF
    assert (a, b) == (3, 1)
    assert cb.example_codes(A)[0] == A.usage.order[0]


def test_figures_draw_for_all_views(tmp_path):
    from matplotlib.figure import Figure

    from vqvae_lib.codebook import figures as P

    A = _toy_analysis(K=6)                          # codes 1..5 except levels -> some dead codes
    assert len(A.usage.dead) > 0
    figs = [P.usage_figure(A), P.geometry_figure(A), P.tissue_figure(A),
            P.slice_views_figure(A, [0, 1]), P.code_view_figure(A, int(A.usage.order[0])),
            P.code_view_figure(A, int(A.usage.dead[0])), *P.swap_views_figure(A, [(0, 0, 5)])]
    assert all(isinstance(f, Figure) and f.axes for f in figs)
    from vqvae_lib.viz import save_figure

    path = save_figure(figs[0], tmp_path, "usage")
    assert path == tmp_path / "figures" / "usage.png" and path.stat().st_size > 1000


def test_widgets_redraw_when_controls_move():
    from vqvae_lib.codebook import widgets as CW

    A = _toy_analysis()
    view = CW.slice_slider(A)
    first = view.image.value
    view.slider.value = 3
    assert view.image.value != first and not view.status.value
    codes = CW.code_slider(A)
    codes.slider.value = 2                          # rank 2 -> the second most used code
    assert codes.code_box.value == A.usage.order[1]
    codes.code_box.value = int(A.usage.order[3])    # typing an id moves the rank slider
    assert codes.slider.value == 4
    swap = CW.code_swap(A)
    swap.slider.value = 5                           # code A choices follow the slice
    assert {v for _, v in swap.code_a.options} == set(A.codes[5].unique().tolist())
    before = swap.image.value
    swap.code_b.value = (swap.code_b.value + 1) % A.codebook_size
    assert swap.image.value != before and not swap.status.value
    assert len(CW.explore(A).children) == 3


def test_code_swap_opens_on_the_suggested_visible_swap():
    """The swap view must open on a swap a student can see (white matter -> CSF), not on two
    background codes, and say in words what it swapped."""
    from vqvae_lib.codebook import widgets as CW

    A = _toy_analysis()
    for index in (0, 4):
        view = CW.code_swap(A, index=index)
        a, b = cb.suggest_swap(A, index)
        assert (view.code_a.value, view.code_b.value) == (a, b) == (3, 1)
        assert "white matter code 3" in view.caption.value and "CSF code 1" in view.caption.value
        before, after, changed = cb.swap_effect(A.model, A.codes[index], a, b)
        assert changed.any() and np.abs(after - before).max() > 0.5   # levels 1 -> 1/3
    view = CW.code_swap(A, index=0)
    view.slider.value = 4                           # a new slice resets to its suggested pair
    assert (view.code_a.value, view.code_b.value) == cb.suggest_swap(A, 4)
    assert f"{int((A.codes[4] == 3).sum())} cells" in view.caption.value


def test_same_budget_experiment_logs_every_variant():
    pytest.importorskip("vqvae_lib.model.vqvae")
    from vqvae_lib.codebook.experiment import run_experiment
    from vqvae_lib.codebook.experiment_report import experiment_figure, experiment_table
    from vqvae_lib.config import get_config

    cfg = get_config("smoke", image_size=32, batch_size=4)
    x = torch.rand(8, 1, 32, 32)
    runs = run_experiment(cfg, x, x[:3], minutes=5, max_steps=3, restart_after=1)
    assert [r.name for r in runs] == ["loss", "ema", "ema + k-means + restart", "FSQ",
                                      "residual VQ"]
    assert all(r.steps == [1, 2, 3] for r in runs)
    assert runs[2].overrides["dead_code_steps"] == 1 and runs[0].overrides["dead_code_steps"] == 0
    assert runs[3].description == "grid 8 x 4"                    # FSQ: 32 codes, like K
    assert runs[4].description == "5 stages x 2 codes"            # RVQ: 5 bits, like K = 32
    for r in runs:
        assert 0 < r.val_used <= cfg.codebook_size and r.val_counts.sum() == 3 * 8 * 8
        assert -1 <= r.val_ssim <= 1 and all(1 <= u <= 4 * 64 for u in r.used_codes)
        assert r.seconds > 0
    assert experiment_figure(runs, cfg.codebook_size).axes
    table = experiment_table(runs, cfg.codebook_size).splitlines()
    assert len(table) == 6 and table[4].startswith("FSQ")


def test_analyse_slices_spreads_over_the_split_and_names_slices(tmp_path):
    from vqvae_lib.data.dataset import SliceSet

    A6 = _toy_analysis()
    images = (A6.images[:, 0].numpy() * 255).round().astype(np.uint8)   # (6, 16, 16)
    slices = SliceSet(images=images, masks=A6.masks, subjects=np.array(["001"] * 3 + ["002"] * 3),
                      slice_index=np.array([0, 1, 2, 0, 1, 2]), paths=[""] * 6, split="validate",
                      source="custom", root=tmp_path)
    A = cb.analyse_slices(ToyVQ(K=4, f=4), slices, max_slices=3)
    assert A.slice_ids.tolist() == [0, 2, 5] and len(A.codes) == 3
    assert torch.equal(A.codes, A6.codes[[0, 2, 5]])
    assert A.title(2) == "#2 (subject 002, slice 2)"
    assert len(cb.analyse_slices(ToyVQ(K=4, f=4), slices).codes) == 6     # 0 = all slices


def test_analysis_works_on_fsq_and_residual_vq_models():
    from vqvae_lib.config import get_config
    from vqvae_lib.model.vqvae import build_model

    x = torch.rand(3, 1, 32, 32)
    for q in ("fsq", "rvq"):
        torch.manual_seed(0)
        cfg = get_config("smoke", image_size=32, quantizer=q, codebook_size=64, rvq_stages=3)
        model = build_model(cfg).train()
        model(x)                                                   # k-means starts (rvq)
        A = cb.analyse_codebook(model.eval(), x)
        assert A.codes.shape == (3, 8, 8) and int(A.codes.max()) < 64
        assert A.codebook.shape == (64, cfg.code_dim) and A.usage.counts.sum() == 3 * 64
        stages = cb.stage_usage(A)
        if q == "fsq":
            assert stages is None
        else:
            assert len(stages) == 3 and all(len(u.counts) == 4 for u in stages)
            assert all(u.counts.sum() == 3 * 64 for u in stages)

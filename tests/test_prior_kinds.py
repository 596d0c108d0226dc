"""The generators beyond the one-level PixelCNN: hierarchical (VQ-VAE-2-like), masked (MaskGIT-like),
clustered codes and patch words; each keeps the shared prior contract (nll_bits, training_loss, prepare,
sample, rebuild from hparams) and its own notion of causality."""

import math

import pytest
import torch

from vqvae_lib.config import get_config
from vqvae_lib.errors import ConfigError
from vqvae_lib.prior.build import build_prior, prior_kind_of, rebuild_prior
from vqvae_lib.prior.clustered import ClusteredCodePrior
from vqvae_lib.prior.draw import draw_codes, nll_bits
from vqvae_lib.prior.hierarchy import HierarchicalPrior
from vqvae_lib.prior.masked import MaskedCodePrior, unmasked_counts
from vqvae_lib.prior.words import RENDER_RULES, PatchWordPrior

pytestmark = pytest.mark.usefixtures("one_torch_thread")

K, D, GRID = 12, 4, (8, 8)


def _vectors() -> torch.Tensor:
    """K code vectors in two well separated families (codes 0-5 near one point, 6-11 near another)."""
    g = torch.Generator().manual_seed(0)
    base = torch.cat([torch.zeros(6, D), torch.full((6, D), 5.0)])
    return base + 0.1 * torch.randn(K, D, generator=g)


def _grids(n: int = 24) -> torch.Tensor:
    """Left half codes from family 0, right half from family 1 (a layout to learn)."""
    g = torch.Generator().manual_seed(1)
    grids = torch.randint(0, 6, (n, *GRID), generator=g)
    grids[:, :, GRID[1] // 2:] += 6
    return grids


def _hierarchical(**kw) -> HierarchicalPrior:
    torch.manual_seed(0)
    prior = HierarchicalPrior(K, D, top_codes=4, factor=2, channels=8, n_layers=2, grid_size=GRID, **kw)
    prior.code_vectors.copy_(_vectors())
    prior.prepare(_grids())
    return prior


def _assert_causal(model, grid: torch.Tensor, values: int, what: str) -> None:
    """Changing the cells from t on (raster order) leaves the logits of cells 0..t unchanged:
    cell t is predicted from cells before it only."""
    T = grid[0].numel()
    for t in (0, 5, T - 1):
        changed = grid.clone().flatten(1)
        changed[:, t:] = (changed[:, t:] + 1) % values
        a = model(grid).flatten(2)[:, :, : t + 1]
        b = model(changed.view_as(grid)).flatten(2)[:, :, : t + 1]
        assert torch.allclose(a, b, atol=1e-5), f"{what} logits up to cell {t} saw later cells"


def _assert_rebuilds(prior) -> None:
    """A prior rebuilt from its kind and hparams, with its state loaded, scores grids identically."""
    again = rebuild_prior(prior_kind_of(prior), prior.hparams)
    again.load_state_dict(prior.state_dict())
    data = _grids(4)
    with torch.no_grad():
        assert torch.allclose(again.nll_bits(data), prior.nll_bits(data))


def _train(prior, data, steps: int) -> float:
    """Adam on the prior's own training loss; the mean NLL (bits per cell) afterwards."""
    opt = torch.optim.Adam(prior.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = prior.training_loss(data)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(prior.nll_bits(data).mean())


# ---- hierarchical -----------------------------------------------------------------------------
def test_top_codes_summarise_blocks_and_separate_the_two_families():
    prior = _hierarchical()
    top = prior.top_codes(_grids())
    assert top.shape == (24, 4, 4)
    left, right = top[:, :, :2].unique(), top[:, :, 2:].unique()
    assert set(left.tolist()).isdisjoint(right.tolist()), "blocks of different families share a top code"


def test_top_codes_do_not_depend_on_autocast():
    prior = _hierarchical()
    data = _grids()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = prior.top_codes(data)
    assert torch.equal(mixed, prior.top_codes(data))


def test_hierarchical_levels_are_each_causal():
    """The top prior is causal over the top grid; the bottom prior, given a fixed top grid, over
    the bottom grid (it may see the whole top grid: that is conditioning, not data)."""
    prior = _hierarchical().eval()
    codes = _grids(2)
    top = prior.top_codes(codes)
    cond = prior.cond_map(top)
    T = GRID[0] * GRID[1]
    for t in (0, 9, 30, T - 1):
        changed = codes.clone().flatten(1)
        changed[:, t:] = torch.randint(0, K, (2, T - t))
        a = prior.bottom(codes, None, cond).flatten(2)[:, :, : t + 1]
        b = prior.bottom(changed.view(2, *GRID), None, cond).flatten(2)[:, :, : t + 1]
        assert torch.allclose(a, b, atol=1e-5), f"bottom logits up to cell {t} saw later codes"
    _assert_causal(prior.top, top, values=4, what="top code")


def test_hierarchical_nll_is_the_two_part_code_and_training_lowers_it():
    prior = _hierarchical()
    data = _grids()
    top_bits, bottom_bits = prior.level_bits(data)
    assert torch.allclose(prior.nll_bits(data), bottom_bits + top_bits / 4)
    with torch.no_grad():
        before = float(prior.nll_bits(data).mean())
    assert _train(prior, data, 40) < before - 0.3


def test_hierarchical_samples_and_survives_a_rebuild():
    prior = _hierarchical(n_classes=2)
    top, codes = prior.sample_levels(3, GRID, temperature=1.0, y=torch.tensor(1),
                                     generator=torch.Generator().manual_seed(0))
    assert top.shape == (3, 4, 4) and codes.shape == (3, *GRID)
    assert codes.min() >= 0 and codes.max() < K
    _assert_rebuilds(prior)
    with pytest.raises(ValueError, match="divisible"):
        HierarchicalPrior(K, D, factor=3, grid_size=GRID)


def test_prepare_refuses_a_prior_without_code_vectors():
    prior = HierarchicalPrior(K, D, top_codes=4, factor=2, channels=8, n_layers=1, grid_size=GRID)
    with pytest.raises(RuntimeError, match="code_vectors"):
        prior.prepare(_grids())


# ---- masked -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cells,steps", [(64, 8), (1024, 12), (5, 8)])
def test_unmasked_counts_grow_to_every_cell(cells, steps):
    counts = unmasked_counts(cells, steps)
    assert len(counts) == steps and counts[-1] == cells
    assert all(b > a for a, b in zip(counts, counts[1:], strict=False) if a < cells)


def test_masked_prior_nll_is_a_proper_code_length_and_training_lowers_it():
    torch.manual_seed(0)
    prior = MaskedCodePrior(K, channels=8, n_layers=2, grid_size=GRID, steps=4)
    data = _grids()
    prior.prepare(data)
    with torch.no_grad():
        before = prior.nll_bits(data)
    assert before.shape == (24,) and (before > 0).all()
    assert float(before.mean()) < math.log2(K) + 0.1   # starts near the unigram, not above uniform
    assert _train(prior, data, 60) < float(before.mean()) - 0.3


def test_masked_prior_samples_every_cell_reproducibly():
    torch.manual_seed(0)
    prior = MaskedCodePrior(K, channels=8, n_layers=2, n_classes=2, grid_size=GRID, steps=5)
    a = prior.sample(3, GRID, [0.5, 1.0, 0.0], y=torch.tensor(0), generator=torch.Generator().manual_seed(3))
    b = prior.sample(3, GRID, [0.5, 1.0, 0.0], y=torch.tensor(0), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() < K, "a hidden cell was left in the sample"


# ---- clustered --------------------------------------------------------------------------------
def _clustered() -> ClusteredCodePrior:
    torch.manual_seed(0)
    prior = ClusteredCodePrior(K, D, groups=2, channels=8, n_layers=2, grid_size=GRID)
    prior.code_vectors.copy_(_vectors())
    prior.prepare(_grids())
    return prior


def test_clustered_groups_follow_the_code_vectors_and_probabilities_sum_to_one():
    prior = _clustered()
    assert prior.group_of[:6].unique().numel() == 1 and prior.group_of[6:].unique().numel() == 1
    assert prior.group_of[0] != prior.group_of[6]
    logp = prior(_grids(2))                                   # (B, K, h, w) log-probabilities
    assert torch.allclose(logp.logsumexp(1), torch.zeros(2, *GRID), atol=1e-5)


def test_clustered_prior_is_causal_and_samples_representatives():
    prior = _clustered().eval()
    codes = _grids(2)
    T = GRID[0] * GRID[1]
    for t in (0, 20, T - 1):
        changed = codes.clone().flatten(1)
        changed[:, t:] = torch.randint(0, K, (2, T - t))
        a = prior(codes).flatten(2)[:, :, : t + 1]
        b = prior(changed.view(2, *GRID)).flatten(2)[:, :, : t + 1]
        assert torch.allclose(a, b, atol=1e-5)
    drawn = prior.sample(4, GRID, 1.0, generator=torch.Generator().manual_seed(0))
    assert set(drawn.unique().tolist()) <= set(prior.representative.tolist())


# ---- patch words ------------------------------------------------------------------------------
def _words(**kw) -> PatchWordPrior:
    torch.manual_seed(0)
    prior = PatchWordPrior(K, D, words=4, patch=2, channels=8, n_layers=2, heads=2, grid_size=GRID, **kw)
    prior.code_vectors.copy_(_vectors())
    prior.prepare(_grids())
    return prior


def test_patches_round_trip_and_words_separate_the_two_families():
    prior = _words()
    data = _grids()
    patches = prior.code_patches(data)
    assert patches.shape == (24, 4, 4, 4)
    assert torch.equal(patches[0, 0, 1], torch.stack([data[0, 0, 2], data[0, 0, 3], data[0, 1, 2], data[0, 1, 3]]))
    assert torch.equal(prior.from_patches(patches), data)
    words = prior.words_of(data)
    assert set(words[:, :, :2].unique().tolist()).isdisjoint(words[:, :, 2:].unique().tolist())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(prior.words_of(data), words)


def test_word_table_is_a_distribution_and_renders_the_right_family():
    prior = _words()
    assert torch.allclose(prior.log_table.float().exp().sum(-1), torch.ones(4, 4), atol=1e-2)
    logp = prior(_grids(2))                                      # (B, K, h, w) log p(code | word)
    assert logp.shape == (2, K, *GRID)
    assert torch.allclose(logp.logsumexp(1), torch.zeros(2, *GRID), atol=1e-2)
    words = prior.words_of(_grids(3))
    for rule in RENDER_RULES:
        prior.render = rule
        codes = prior.render_words(words)
        assert codes.shape == (3, *GRID)
        assert (codes[:, :, :4] < 6).all() and (codes[:, :, 4:] >= 6).all(), rule
    # medoids and exemplars are patches that occur in the training grids, under their own word
    train = _grids()
    seen = {(int(w), tuple(p.tolist())) for w, p in zip(prior.words_of(train).flatten(),
                                                        prior.code_patches(train).flatten(0, 2), strict=True)}
    for w in prior.words_of(train).unique():
        assert (int(w), tuple(prior.medoids[w].tolist())) in seen
        assert all((int(w), tuple(e.tolist())) in seen for e in prior.exemplars[w, : prior.n_exemplars[w]])


def test_word_prior_is_causal_over_words():
    prior = _words().eval()
    _assert_causal(prior.words, prior.words_of(_grids(2)), values=4, what="word")


def test_word_nll_is_the_two_part_code_and_training_lowers_it():
    prior = _words()
    data = _grids()
    word_bits, code_bits = prior.level_bits(data)
    assert torch.allclose(prior.nll_bits(data), code_bits + word_bits / 4)
    assert torch.allclose(code_bits, nll_bits(prior(data), data), atol=1e-4), "table lookup != forward"
    with torch.no_grad():
        before = float(prior.nll_bits(data).mean())
    after = _train(prior, data, 60)
    assert after < before - 0.1
    with torch.no_grad():   # only the word part can move: the table is fixed
        assert torch.allclose(prior.level_bits(data)[1], code_bits, atol=1e-5)


def test_word_prior_samples_and_survives_a_rebuild():
    prior = _words(n_classes=2)
    words, codes = prior.sample_levels(3, GRID, temperature=1.0, y=torch.tensor(1),
                                       generator=torch.Generator().manual_seed(0))
    assert words.shape == (3, 4, 4) and codes.shape == (3, *GRID)
    for w, patch in zip(words.flatten(), prior.code_patches(codes).flatten(0, 2), strict=True):
        kept = prior.exemplars[w, : prior.n_exemplars[w]]            # the word's training patches
        assert (kept == patch).all(1).any(), "a rendered patch is not one of its word's exemplars"
    prior.render = "mode"
    assert torch.equal(prior.sample_levels(3, GRID, 1.0, torch.tensor(1), torch.Generator().manual_seed(0))[1],
                       prior.render_words(words)), "mode rendering is not a function of the words"
    assert prior.layout_vectors(words).shape == (3, D, *GRID)
    _assert_rebuilds(prior)
    with pytest.raises(ValueError, match="divisible"):
        PatchWordPrior(K, D, patch=3, grid_size=GRID)
    with pytest.raises(ValueError, match="render"):
        PatchWordPrior(K, D, patch=2, grid_size=GRID, render="mean")


def test_matched_render_takes_every_piece_of_a_sample_from_slices_of_one_contrast():
    # 40 grids of 8x8 codes: background (code 0) around a 4x4 head of one tissue code, 1 in the
    # bright half of the grids and 2 in the dull half; 1 and 2 are near-synonyms, so one word
    # covers the head patches of both, and its exemplars mix bright and dull slices.
    grids = torch.zeros(40, 8, 8, dtype=torch.long)
    grids[:20, 2:6, 2:6], grids[20:, 2:6, 2:6] = 1, 2
    prior = PatchWordPrior(3, 2, words=2, patch=2, channels=8, n_layers=1, heads=2,
                           grid_size=(8, 8), exemplars=16, anchors=8)
    prior.code_vectors.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.2]]))
    prior.prepare(grids)
    head = prior.words_of(grids)[:, 1:3, 1:3]
    word = int(head[0, 0, 0])
    assert (head == word).all() and (prior.words_of(grids)[:, 0] != word).all()
    families = prior.exemplars[word, : prior.n_exemplars[word]].unique().tolist()
    assert families == [1, 2], "the head word should have exemplars from both halves"
    assert {round(v, 3) for v in prior.anchor_contrast[:, 1].tolist()} <= {0.0, 0.2}
    words = prior.words_of(grids[:1]).expand(64, 4, 4)
    g = torch.Generator().manual_seed(0)
    prior.render = "matched"
    heads = prior.render_words(words, g)[:, 2:6, 2:6].flatten(1)          # (64, 16)
    assert (heads == heads[:, :1]).all(), "a matched sample mixes bright and dull pieces"
    assert set(heads[:, 0].tolist()) == {1, 2}, "the anchors should reach both contrasts"
    prior.render = "exemplar"
    mixed = prior.render_words(words, g)[:, 2:6, 2:6].flatten(1)
    assert (mixed != mixed[:, :1]).any(1).float().mean() > 0.5           # random pieces mix
    again = rebuild_prior("words", prior.hparams)                        # the contrasts travel
    again.load_state_dict(prior.state_dict())
    prior.render = again.render = "matched"
    assert torch.equal(again.render_words(words, torch.Generator().manual_seed(1)),
                       prior.render_words(words, torch.Generator().manual_seed(1)))
    # a words prior saved before contrasts and row totals existed still loads, scoring the same
    old = {k: v for k, v in prior.state_dict().items()
           if k not in ("exemplar_contrast", "anchor_contrast", "log_norm")}
    again = rebuild_prior("words", {**prior.hparams, "render": "exemplar"})
    again.load_state_dict(old)
    assert torch.allclose(again.nll_bits(grids), prior.nll_bits(grids))


def test_nucleus_sampling_keeps_only_the_likeliest_codes():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log().expand(4000, 4)
    temps, greedy = torch.ones(4000, 1), torch.zeros(4000, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    nucleus = draw_codes(logits, temps, greedy, g, top_p=0.7)
    assert set(nucleus.unique().tolist()) == {0, 1}             # 0.5 + 0.3 >= 0.7: 2 and 3 dropped
    share = float((nucleus == 0).float().mean())
    assert abs(share - 0.5 / 0.8) < 0.03                        # renormalised over the nucleus
    assert set(draw_codes(logits, temps, greedy, g).unique().tolist()) == {0, 1, 2, 3}


def test_word_prior_top_p_reaches_the_word_sampler():
    prior = _words(n_classes=2)
    greedy, _ = prior.sample_levels(3, GRID, temperature=0.0, y=torch.tensor(0),
                                    generator=torch.Generator().manual_seed(0))
    prior.top_p = 1e-6                                          # a nucleus of one word: the likeliest
    tiny, _ = prior.sample_levels(3, GRID, temperature=1.0, y=torch.tensor(0),
                                  generator=torch.Generator().manual_seed(1))
    assert torch.equal(tiny, greedy)
    with pytest.raises(ValueError, match="top_p"):
        PatchWordPrior(K, D, patch=2, grid_size=GRID, top_p=0.0)


# ---- the config chooses, and says what it knows -----------------------------------------------
@pytest.mark.parametrize("kind", ["pixelcnn", "transformer", "hierarchical", "masked", "clustered", "words"])
def test_every_prior_kind_builds_from_the_smoke_config(kind):
    cfg = get_config("smoke", prior_kind=kind, prior_top_factor=2, prior_top_codes=4)
    prior = build_prior(cfg, n_classes=2, code_vectors=torch.randn(cfg.codebook_size, cfg.code_dim))
    assert prior_kind_of(prior) == kind


def test_unknown_prior_kind_lists_the_choices():
    with pytest.raises(ConfigError, match="clustered"):
        get_config("cpu", prior_kind="diffusion")

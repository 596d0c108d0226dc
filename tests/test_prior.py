"""The priors: causal masking (by gradients), sampling, likelihood, training, reuse, CLI."""

import json
import math

import pytest
import torch

from vqvae_lib.errors import CheckpointError
from vqvae_lib.prior.codes import slice_bins
from vqvae_lib.prior.figures import causal_receptive_field as receptive_field
from vqvae_lib.prior.figures import receptive_field_map
from vqvae_lib.prior.fit import baseline_bits
from vqvae_lib.prior.pixelcnn import GatedPixelCNN, MaskedConv2d, plain_pixelcnn
from vqvae_lib.prior.store import load_prior
from vqvae_lib.prior.transformer import CodeTransformer
from vqvae_lib.realism.metrics import nearest_neighbours

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread

SHAPE = (6, 7)


CELLS = [(0, 0), (0, 1), (0, 6), (1, 0), (1, 6), (3, 3), (5, 0), (5, 6)]


def _later_or_same(shape, cell):
    h, w = shape
    order = torch.arange(h * w).reshape(h, w)
    return order >= cell[0] * w + cell[1]


@pytest.mark.parametrize("kwargs", [
    dict(n_layers=1, first_kernel=3),
    dict(n_layers=3, first_kernel=5),
    dict(n_layers=2, first_kernel=3, n_classes=3),
    dict(n_layers=2, first_kernel=3, grid_size=SHAPE),
])
def test_gated_prior_never_sees_current_or_future_cells(kwargs):
    torch.manual_seed(0)
    model = GatedPixelCNN(num_codes=5, channels=6, **kwargs)
    h, w = SHAPE
    for i, j in CELLS:  # corners, edges and the middle
        rf = receptive_field(model, SHAPE, (i, j))  # (h, w) gradient magnitudes
        assert rf[_later_or_same(SHAPE, (i, j))].abs().max() == 0, f"cell {(i, j)} sees the future"
        if j > 0:
            assert rf[i, j - 1] > 0, f"cell {(i, j)} does not see its left neighbour"
        if i > 0:
            assert rf[i - 1, j] > 0, f"cell {(i, j)} does not see the cell above"
            if j + 1 < w:
                assert rf[i - 1, j + 1] > 0, f"cell {(i, j)} does not see up-right"


def test_label_conditioning_changes_logits_but_not_causality():
    torch.manual_seed(0)
    model = GatedPixelCNN(num_codes=5, channels=6, n_layers=2, n_classes=3)
    codes = torch.randint(0, 5, (2, *SHAPE))
    a = model(codes, torch.tensor([0, 0]))
    b = model(codes, torch.tensor([2, 2]))
    assert a.shape == (2, 5, *SHAPE)
    assert not torch.allclose(a, b)


def test_masked_conv_masks():
    a = MaskedConv2d("A", 1, 1, 5).mask[0, 0]
    b = MaskedConv2d("B", 1, 1, 5).mask[0, 0]
    assert a[2, 2] == 0 and b[2, 2] == 1
    assert a[:2].all() and a[2, :2].all() and a[3:].sum() == 0 and a[2, 3:].sum() == 0
    with pytest.raises(ValueError):
        MaskedConv2d("C", 1, 1, 3)


def test_plain_stack_is_causal_but_has_a_blind_spot_the_gated_one_lacks():
    torch.manual_seed(0)
    shape, cell, layers = (9, 11), (6, 5), 4
    plain = receptive_field_map(plain_pixelcnn(4, layers), shape, cell, layers, channels=4)
    gated = receptive_field_map(GatedPixelCNN(4, 4, layers, 3, 3), shape, cell, layers)
    later = _later_or_same(shape, cell).numpy()
    for m in (plain, gated):  # 0 = later cell, 4 = the cell itself: never "seen" (3)
        assert (m[later] != 3).all()
    assert (plain == 2).sum() > 0, "square masked convolutions should leave a blind spot"
    assert (gated == 2).sum() == 0, "vertical + horizontal stacks should see all earlier cells in reach"


@pytest.mark.parametrize("grid_size", [None, SHAPE], ids=["no-position", "position"])
def test_sampling_returns_valid_codes_and_matches_the_full_forward(grid_size):
    torch.manual_seed(0)
    model = GatedPixelCNN(num_codes=7, channels=8, n_layers=2, first_kernel=3,  # reach 3 < grid
                          grid_size=grid_size)
    if grid_size is not None:  # a non-trivial position embedding, so window offsets matter
        torch.nn.init.normal_(model.position)
    codes = model.sample(5, SHAPE, temperature=1.0)
    assert codes.shape == (5, *SHAPE) and codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < 7
    # The cropped, row-by-row sampler must agree with the plain full-grid forward pass.
    greedy = model.sample(3, SHAPE, temperature=0.0)
    naive = torch.zeros(3, *SHAPE, dtype=torch.long)
    with torch.no_grad():
        for i in range(SHAPE[0]):
            for j in range(SHAPE[1]):
                naive[:, i, j] = model(naive)[:, :, i, j].argmax(1)
    assert torch.equal(greedy, naive)
    with pytest.raises(ValueError):
        model.sample(4, SHAPE, temperature=[1.0, 0.5])
    if grid_size is not None:
        with pytest.raises(ValueError, match="built for"):
            model.sample(2, (4, 4))


def test_sampling_is_reproducible_with_a_generator_and_per_sample_temperature():
    torch.manual_seed(0)
    model = GatedPixelCNN(num_codes=7, channels=8, n_layers=2)
    a = model.sample(4, (4, 4), [0.5, 1.0, 1.5, 0.0], generator=torch.Generator().manual_seed(1))
    b = model.sample(4, (4, 4), [0.5, 1.0, 1.5, 0.0], generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def _stripes(n: int, K: int, shape=(8, 8)) -> torch.Tensor:
    """Structured grids: each row repeats one code, consecutive rows count up (mod K)."""
    start = torch.randint(0, K, (n, 1, 1))
    rows = torch.arange(shape[0])[None, :, None]
    return ((start + rows) % K).expand(n, *shape).clone()


def _fit_nll(model, data, steps: int) -> tuple[float, float]:
    """Mean bits per cell before and after ``steps`` Adam steps on ``data``."""
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    with torch.no_grad():
        before = float(model.nll_bits(data).mean())
    for _ in range(steps):
        loss = model.nll_bits(data).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return before, float(model.nll_bits(data).mean())


def test_nll_decreases_with_training_and_beats_uniform():
    torch.manual_seed(0)
    K = 8
    data = _stripes(32, K)
    before, after = _fit_nll(GatedPixelCNN(num_codes=K, channels=16, n_layers=2), data, 40)
    assert after < 0.5 * before
    assert after < math.log2(K) * 0.5  # the grids are nearly deterministic given the first cell


def test_baselines_and_slice_bins():
    K = 16
    train = torch.randint(0, 4, (10, 4, 4))  # only 4 of 16 codes used
    b = baseline_bits(train, train, K)
    assert b["uniform"] == pytest.approx(4.0)
    assert b["unigram_entropy"] <= 2.0 + 1e-9
    assert b["unigram_entropy"] < b["unigram_test"] < b["uniform"]  # smoothing costs a little
    bins = slice_bins(torch.tensor([0, 5, 10, 31]), 4, 0, 31)
    assert bins.tolist() == [0, 0, 1, 3]


def test_nearest_neighbours_finds_copies():
    torch.manual_seed(0)
    refs = torch.rand(50, 1, 8, 8)
    idx, mse = nearest_neighbours(refs[[7, 31]] + 0.001, refs, chunk=16)
    assert idx.tolist() == [7, 31]
    assert (mse < 1e-5).all()


def test_load_prior_explains_wrong_files(tmp_path):
    with pytest.raises(CheckpointError, match="No prior checkpoint"):
        load_prior(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_prior(bad)


# ---- the whole pipeline on a tiny data set and an untrained VQ-VAE --------------------------
@pytest.fixture
def tiny_run(tmp_path, monkeypatch):
    from data_fixtures import make_oasis

    import vqvae_lib.paths
    from vqvae_lib.checkpoint import save_checkpoint
    from vqvae_lib.config import get_config
    from vqvae_lib.model.vqvae import build_model

    monkeypatch.setattr(vqvae_lib.paths, "default_cache_dir", lambda: tmp_path / "cache")
    data = make_oasis(tmp_path / "data", slices=4, size=32)
    cfg = get_config("smoke", image_size=32, kmeans_init=False)  # 8x8 codes, K = 32
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt", model=build_model(cfg), cfg=cfg)
    return ckpt, data, tmp_path / "run"


def test_train_prior_writes_checkpoints_and_reloads(tiny_run):
    from vqvae_lib.prior.fit import train_prior

    ckpt, data, run_dir = tiny_run
    run = train_prior(ckpt, data, device="cpu", verbose=False, prior_epochs=2, prior_channels=8,
                      prior_layers=2)
    for name in ("best.pt", "last.pt", "history.json", "metrics.json", "codes_train.pt", "codes_test.pt"):
        assert (run_dir / "prior" / name).is_file(), name
    assert len(run.history["val"]) == 2 and run.history["train"]
    m = run.metrics
    assert math.isfinite(m["test_bits"]) and m["uniform"] == pytest.approx(5.0)
    assert run.codes["train"]["codes"].shape == (16, 8, 8)  # 4 subjects x 4 slices
    prior, saved = load_prior(run_dir / "prior" / "best.pt")
    assert saved["extra"]["latent_shape"] == [8, 8]
    assert saved["extra"]["vqvae_checkpoint"] == "checkpoints/best.pt"   # relative to the run
    assert saved["extra"]["precision"] in ("bf16", "fp32") and m["precision"] == saved["extra"]["precision"]
    assert prior.sample(3, (8, 8)).shape == (3, 8, 8)
    again = train_prior(ckpt, data, retrain=False, verbose=False)  # reloads, no training
    assert again.metrics == pytest.approx(m) and again.history["val"] == run.history["val"]
    with pytest.raises(CheckpointError, match="not a prior checkpoint"):
        load_prior(ckpt)


def test_cli_trains_a_conditional_prior_and_samples_pngs(tiny_run):
    import numpy as np
    from PIL import Image

    from vqvae_lib.checkpoint import find_checkpoint
    from vqvae_lib.prior.__main__ import main
    from vqvae_lib.realism.__main__ import main as realism_main

    ckpt, data, run_dir = tiny_run
    assert main(["train", "--checkpoint", str(ckpt), "--data-dir", str(data), "--device", "cpu",
                 "--prior_epochs", "1", "--prior-channels", "8", "--prior_layers", "2",
                 "--prior_cond_bins", "2"]) == 0
    prior, saved = load_prior(run_dir / "prior" / "best.pt")
    assert prior.n_classes == 2 and saved["extra"]["cond"]["bins"] == 2
    out = run_dir / "samples"
    assert main(["sample", "--prior", str(run_dir / "prior" / "best.pt"), "-n", "4", "--label", "1",
                 "--temperature", "0.7", "--out-dir", str(out), "--device", "cpu", "--seed", "3"]) == 0
    pngs = sorted(out.glob("sample_*.png"))
    assert [p.name for p in pngs] == [f"sample_{i:03d}.png" for i in range(4)]
    with Image.open(pngs[0]) as im:
        assert im.mode == "L" and im.size == (32, 32)
    codes = np.load(out / "codes.npy")
    assert codes.shape == (4, 8, 8) and codes.min() >= 0 and codes.max() < 32
    again = run_dir / "samples_again"   # the same seed draws the same slices
    main(["sample", "--prior", str(run_dir / "prior" / "best.pt"), "-n", "4", "--label", "1",
          "--temperature", "0.7", "--out-dir", str(again), "--device", "cpu", "--seed", "3"])
    assert np.array_equal(np.load(again / "codes.npy"), codes)
    with pytest.raises(SystemExit):
        main(["train", "--checkpoint", str(ckpt), "--no_such_field", "1"])
    with pytest.raises(CheckpointError, match="03_training"):
        find_checkpoint(run_dir.parent / "empty", needed_for="the prior is fitted to its codes")
    for split in ("test", "validate"):      # score: the samples against a held-out split
        report = run_dir / f"score_{split}.json"
        assert realism_main([str(out), "--split", split, "--data-dir", str(data), "--size", "32",
                     "-n", "4", "--out", str(report)]) == 0
        scores = json.loads(report.read_text())
        assert scores["split"] == split and 0 <= scores["one_nn_shape"]["generated"] <= 1
        assert "patch_memorisation" in scores and "floor" in scores["one_nn_intensity"]


def test_novelty_of_training_slices_is_zero():
    from vqvae_lib.config import get_config
    from vqvae_lib.model.inference import encode
    from vqvae_lib.model.vqvae import build_model
    from vqvae_lib.realism.scoring import novelty

    torch.manual_seed(0)
    vqvae = build_model(get_config("smoke", image_size=32)).eval()
    train = torch.rand(12, 1, 32, 32)
    queries = train[[2, 9]]
    nov = novelty(vqvae, queries, encode(vqvae, queries, device="cpu"), train)
    assert nov["index"].tolist() == [2, 9]
    assert torch.allclose(nov["shared"], torch.ones(2)) and (nov["mse"] < 1e-6).all()


# ---- the transformer prior: same contract as the PixelCNN ------------------------------------
@pytest.mark.parametrize("n_classes", [0, 3])
def test_transformer_never_sees_current_or_future_cells(n_classes):
    torch.manual_seed(0)
    model = CodeTransformer(num_codes=5, channels=8, n_layers=2, heads=2, n_classes=n_classes,
                            grid_size=SHAPE)
    h, w = SHAPE
    for i, j in CELLS:
        rf = receptive_field(model, SHAPE, (i, j))  # gradients w.r.t. the embedded input
        assert rf[_later_or_same(SHAPE, (i, j))].abs().max() == 0, f"cell {(i, j)} sees the future"
        earlier = ~_later_or_same(SHAPE, (i, j))
        if earlier.any():   # global context: every earlier cell reaches the prediction
            assert (rf[earlier] > 0).all(), f"cell {(i, j)} misses an earlier cell"


@pytest.mark.parametrize("kind", ["pixelcnn", "transformer"])
def test_changing_later_codes_leaves_earlier_logits_unchanged(kind):
    """Causality on real code inputs: cell t's logits depend only on cells before t."""
    torch.manual_seed(0)
    model = (GatedPixelCNN(6, 8, 2, grid_size=SHAPE) if kind == "pixelcnn"
             else CodeTransformer(6, 8, 2, heads=2, grid_size=SHAPE)).eval()
    codes = torch.randint(0, 6, (2, *SHAPE))
    T = SHAPE[0] * SHAPE[1]
    for t in (0, 5, 17, T - 1):
        changed = codes.clone().flatten(1)
        changed[:, t:] = torch.randint(0, 6, (2, T - t))
        a = model(codes).flatten(2)[:, :, : t + 1]
        b = model(changed.reshape(2, *SHAPE)).flatten(2)[:, :, : t + 1]
        assert torch.allclose(a, b, atol=1e-5), f"{kind}: logits up to cell {t} saw later codes"


def test_transformer_sampler_with_cache_matches_the_full_forward():
    torch.manual_seed(0)
    model = CodeTransformer(num_codes=7, channels=8, n_layers=2, heads=2, n_classes=2,
                            grid_size=SHAPE)
    codes = model.sample(3, SHAPE, temperature=1.0, y=torch.tensor([0, 1, 1]))
    assert codes.shape == (3, *SHAPE) and codes.min() >= 0 and codes.max() < 7
    greedy = model.sample(2, SHAPE, temperature=0.0, y=torch.tensor(1))
    naive = torch.zeros(2, *SHAPE, dtype=torch.long)
    with torch.no_grad():
        for i in range(SHAPE[0]):
            for j in range(SHAPE[1]):
                naive[:, i, j] = model(naive, torch.tensor([1, 1]))[:, :, i, j].argmax(1)
    assert torch.equal(greedy, naive)
    a = model.sample(2, SHAPE, [0.5, 1.5], generator=torch.Generator().manual_seed(4))
    b = model.sample(2, SHAPE, [0.5, 1.5], generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="built for"):
        model.sample(2, (4, 4))


def test_transformer_learns_structured_grids():
    torch.manual_seed(0)
    K = 8
    data = _stripes(32, K)
    model = CodeTransformer(num_codes=K, channels=16, n_layers=2, heads=2, grid_size=(8, 8))
    before, after = _fit_nll(model, data, 60)
    assert after < 0.5 * before and after < math.log2(K) * 0.5


def test_a_vqvae_retrained_at_the_same_path_gets_a_new_prior(tiny_run, capsys):
    from vqvae_lib.checkpoint import file_hash, save_checkpoint
    from vqvae_lib.config import get_config
    from vqvae_lib.model.vqvae import build_model
    from vqvae_lib.prior.fit import train_prior

    ckpt, data, run_dir = tiny_run
    kw = dict(device="cpu", verbose=False, prior_epochs=1, prior_channels=8, prior_layers=2)
    first = train_prior(ckpt, data, **kw)
    old_codes = first.codes["train"]["codes"]
    torch.manual_seed(123)   # "retrain": other weights, same path
    save_checkpoint(ckpt, model=build_model(get_config("smoke", image_size=32, kmeans_init=False)),
                    cfg=get_config("smoke", image_size=32, kmeans_init=False))
    again = train_prior(ckpt, data, retrain=False, **kw)
    _, saved = load_prior(run_dir / "prior" / "best.pt")
    assert saved["extra"]["vqvae_sha1"] == file_hash(ckpt), "the old prior was reused"
    assert again.metrics["vqvae_sha1"] == file_hash(ckpt)
    assert not torch.equal(again.codes["train"]["codes"], old_codes), "stale code cache"
    reused = train_prior(ckpt, data, retrain=False, **kw)   # same content: reused
    assert reused.metrics == again.metrics


def test_a_saved_prior_keeps_its_own_architecture(tiny_run, monkeypatch):
    from vqvae_lib import config
    from vqvae_lib.prior.fit import train_prior

    ckpt, data, run_dir = tiny_run
    train_prior(ckpt, data, device="cpu", verbose=False, prior_epochs=1, prior_kind="transformer",
                prior_channels=8, prior_layers=1, prior_heads=2, prior_cond_bins=2)
    # The preset changes afterwards: loading must not rebuild the prior from it.
    monkeypatch.setitem(config.PRESETS, "smoke", {**config.PRESETS["smoke"], "prior_layers": 5,
                                                  "prior_channels": 32, "prior_kind": "pixelcnn"})
    prior, saved = load_prior(run_dir / "prior" / "best.pt")
    assert isinstance(prior, CodeTransformer) and len(prior.blocks) == 1 and prior.n_classes == 2
    assert saved["extra"]["prior_kind"] == "transformer"
    run = train_prior(ckpt, data, retrain=False, verbose=False)
    assert isinstance(run.prior, CodeTransformer) and run.cfg.prior_layers == 1


def test_prior_outputs_are_written_atomically(tiny_run, monkeypatch):
    """A crash while writing metrics.json leaves the previous file whole (temp file + rename)."""
    import os

    from vqvae_lib.prior.fit import train_prior

    ckpt, data, run_dir = tiny_run
    kw = dict(device="cpu", verbose=False, prior_epochs=1, prior_channels=8, prior_layers=2)
    train_prior(ckpt, data, **kw)
    before = (run_dir / "prior" / "metrics.json").read_text()
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("metrics.json"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        train_prior(ckpt, data, **{**kw, "seed": 1})
    assert (run_dir / "prior" / "metrics.json").read_text() == before
    assert not list((run_dir / "prior").glob(".*.tmp")), "temporary files left behind"


# ---- command-line errors: one line, exit status 2 --------------------------------------------
def test_sample_with_a_missing_or_damaged_prior_exits_2_in_one_line(tmp_path, capsys):
    from vqvae_lib.prior.__main__ import main

    rc = main(["sample", "--prior", str(tmp_path / "nope.pt"), "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: No prior checkpoint") and err.count("\n") == 1
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    rc = main(["sample", "--prior", str(bad), "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "damaged" in err and err.count("\n") == 1 and "Traceback" not in err


def test_python_m_prior_sample_reports_a_damaged_checkpoint_without_traceback(tmp_path):
    import os
    import subprocess
    import sys

    from vqvae_lib.paths import repo_root

    bad = tmp_path / "best.pt"
    bad.write_bytes(b"\x00" * 100)
    env = {**os.environ, "PYTHONPATH": str(repo_root()), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "vqvae_lib.prior", "sample", "--prior", str(bad),
                        "--out-dir", str(tmp_path / "o")], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0
    assert str(bad) in r.stderr


# ---- the config chooses, and says what it knows ----------------------------------------------
@pytest.mark.parametrize("kind", ["pixelcnn", "transformer"])
def test_every_prior_kind_builds_from_the_smoke_config(kind):
    from vqvae_lib.config import get_config
    from vqvae_lib.prior.store import PRIOR_KINDS, build_prior

    cfg = get_config("smoke", prior_kind=kind, prior_heads=2)
    prior = build_prior(cfg, n_classes=2)
    assert isinstance(prior, PRIOR_KINDS[kind]) and prior.n_classes == 2


def test_unknown_prior_kind_lists_the_choices():
    from vqvae_lib.config import get_config
    from vqvae_lib.errors import ConfigError

    with pytest.raises(ConfigError, match="transformer"):
        get_config("cpu", prior_kind="diffusion")


def test_a_retired_prior_is_refused_naming_the_page_that_lists_it(tmp_path):
    from vqvae_lib.checkpoint import save_checkpoint
    from vqvae_lib.config import get_config

    path = save_checkpoint(tmp_path / "best.pt", model=GatedPixelCNN(4, 8, 1), cfg=get_config("smoke"),
                           extra={"kind": "prior", "prior_kind": "words", "hparams": {}})
    with pytest.raises(CheckpointError, match="GENERATORS.md"):
        load_prior(path)


# ---- the live sampler widget ------------------------------------------------------------------
def test_sampler_widget_draws_and_exposes_described_controls():
    import ipywidgets as W

    from vqvae_lib.config import get_config
    from vqvae_lib.model.vqvae import build_model
    from vqvae_lib.prior.figures import Sampler

    torch.manual_seed(0)
    vqvae = build_model(get_config("smoke", image_size=32)).eval()   # 8x8 codes, K = 32
    prior = GatedPixelCNN(32, 8, 2, n_classes=4, grid_size=(8, 8))
    s = Sampler(prior, vqvae, n=4, temperature=0.9, seed=3)
    described = {c.description for c in s.children[0].children}
    assert {"temperature", "slice position", "seed", "sample"} <= described
    assert "vqvae-prior-sampler" in s._dom_classes
    assert isinstance(s.button, W.Button) and s.image.value[:4] == b"\x89PNG"
    first = s.last["codes"].clone()
    s.position.value = 2
    s.seed.value = 4
    s.button.click()
    assert s.last["labels"].tolist() == [2, 2, 2, 2] and not torch.equal(first, s.last["codes"])
    assert s.seed.value == 5                       # "sample" moves to the next seed and draws
    before = s.image.value
    s.temperature.value = 1.4                      # moving a control draws at once
    assert s.image.value != before and "temperature 1.40" in s.status.value
    assert "4 slices" in s.status.value and s.figure() is not None
    plain = Sampler(GatedPixelCNN(32, 8, 2, grid_size=(8, 8)), vqvae, n=2, draw_now=False)
    assert "slice position" not in {c.description for c in plain.children[0].children}


# ---- nothing lost: the right VQ-VAE, the better prior, one sampling per folder ----------------
def _train_tiny(ckpt, data, **kw):
    from vqvae_lib.prior.fit import train_prior

    return train_prior(ckpt, data, device="cpu", verbose=False, **{
        "prior_epochs": 1, "prior_channels": 8, "prior_layers": 2, **kw})


def test_a_worse_prior_never_replaces_a_better_one(tiny_run):
    ckpt, data, run_dir = tiny_run
    good = _train_tiny(ckpt, data, prior_epochs=3, prior_lr=3e-3)
    good_bytes = (run_dir / "prior" / "best.pt").read_bytes()
    worse = _train_tiny(ckpt, data, prior_max_steps=1, prior_lr=1e-6)   # one tiny step
    assert (run_dir / "prior" / "best.pt").read_bytes() == good_bytes, "the better prior was lost"
    assert worse.metrics == pytest.approx(good.metrics)                # the kept prior's numbers
    lost = json.loads((run_dir / "prior" / "previous" / "metrics.json").read_text())
    assert lost["best_val_bits"] > good.metrics["best_val_bits"]       # the loser is kept aside
    better = _train_tiny(ckpt, data, prior_epochs=6, prior_lr=3e-3, seed=1)
    if better.metrics["best_val_bits"] < good.metrics["best_val_bits"]:
        assert (run_dir / "prior" / "previous" / "best.pt").read_bytes() == good_bytes
    assert not (run_dir / "prior" / "candidate").exists()


def test_sampling_refuses_another_vqvae_and_finds_its_own_from_anywhere(tiny_run, tmp_path,
                                                                        monkeypatch, capsys):
    from vqvae_lib.checkpoint import save_checkpoint
    from vqvae_lib.config import get_config
    from vqvae_lib.model.vqvae import build_model
    from vqvae_lib.prior.__main__ import main

    ckpt, data, run_dir = tiny_run
    _train_tiny(ckpt, data)
    prior = run_dir / "prior" / "best.pt"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)       # the stored VQ-VAE path resolves from the run folder
    assert main(["sample", "--prior", str(prior), "-n", "2", "--out-dir", "s", "--device", "cpu"]) == 0
    assert len(list((elsewhere / "s").glob("sample_*.png"))) == 2
    torch.manual_seed(7)               # another VQ-VAE: refused, naming both files and the fix
    cfg = get_config("smoke", image_size=32, kmeans_init=False)
    other = save_checkpoint(tmp_path / "other" / "checkpoints" / "best.pt", model=build_model(cfg),
                            cfg=cfg)
    capsys.readouterr()
    assert main(["sample", "--prior", str(prior), "--checkpoint", str(other), "-n", "2",
                 "--out-dir", "t", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "fitted to another VQ-VAE" in err and str(other) in err and "prior train" in err
    assert not (elsewhere / "t").exists()
    save_checkpoint(ckpt, model=build_model(cfg), cfg=cfg)   # retrained in place: refused too
    assert main(["sample", "--prior", str(prior), "-n", "2", "--out-dir", "t", "--device", "cpu"]) == 2
    assert "fitted to another VQ-VAE" in capsys.readouterr().err


@pytest.mark.parametrize("args, says", [
    (["-n", "0"], "-n 0"), (["-n", "-5"], "-n -5"), (["--temperature", "nan"], "--temperature nan"),
    (["--temperature", "-1"], "--temperature -1.0"), (["--label", "99"], "--label 99"),
    (["--device", "gpu0"], "--device gpu0"),
])
def test_bad_sample_options_are_one_line_before_any_work(tiny_run, capsys, args, says):
    from vqvae_lib.prior.__main__ import main

    ckpt, data, run_dir = tiny_run
    _train_tiny(ckpt, data, prior_cond_bins=2)
    out = run_dir / "s"
    with pytest.raises(SystemExit) as e:
        main(["sample", "--prior", str(run_dir / "prior" / "best.pt"), "--out-dir", str(out),
              "--device", "cpu", *args] if "--device" not in args else
             ["sample", "--prior", str(run_dir / "prior" / "best.pt"), "--out-dir", str(out), *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and says in err and "Traceback" not in err
    assert not out.exists()


def test_a_sample_folder_holds_one_sampling(tiny_run, tmp_path):
    from vqvae_lib.errors import DataError
    from vqvae_lib.prior.sample import write_samples

    imgs, codes = torch.rand(5, 1, 32, 32), torch.zeros(5, 8, 8, dtype=torch.long)
    out = tmp_path / "samples"
    write_samples(imgs, codes, out, {"seed": 0})
    write_samples(imgs[:3], codes[:3], out, {"seed": 1})     # fewer: the old five are gone
    assert sorted(p.name for p in out.glob("sample_*.png")) == [f"sample_{i:03d}.png" for i in range(3)]
    assert json.loads((out / "samples.json").read_text()) == {"n": 3, "seed": 1}
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match="thesis.tex"):
        write_samples(imgs, codes, mine)
    assert (mine / "thesis.tex").read_text() == "precious" and not list(mine.glob("*.png"))


# ---- honesty: the sampled model is the scored model, every code is drawn, nothing thrown away --
def test_the_model_that_samples_is_the_model_whose_nll_is_reported(tiny_run):
    from vqvae_lib.model.inference import decode
    from vqvae_lib.prior.codes import condition_labels
    from vqvae_lib.prior.fit import evaluate_bits
    from vqvae_lib.prior.sample import generate

    ckpt, data, run_dir = tiny_run
    run = _train_tiny(ckpt, data, prior_epochs=2, prior_cond_bins=2)
    saved, _ = load_prior(run_dir / "prior" / "best.pt")       # what `prior sample` loads
    labels, _ = condition_labels(run.codes, 2)
    again = evaluate_bits(saved, run.codes["test"]["codes"], labels["test"])
    assert again == pytest.approx(run.metrics["test_bits"], abs=1e-6)   # the reported NLL is its own
    on_disk = json.loads((run_dir / "prior" / "metrics.json").read_text())
    assert on_disk["test_bits"] == pytest.approx(run.metrics["test_bits"])
    # generate draws every code from that prior's own sampler: the same codes, n of n kept
    from vqvae_lib.checkpoint import load_model

    vqvae, _, _ = load_model(ckpt)
    out = generate(saved, vqvae, 6, 1.0, seed=5)
    direct = saved.sample(6, saved.grid_size, 1.0, y=torch.arange(6) % 2,
                          generator=torch.Generator().manual_seed(5))
    assert torch.equal(out["codes"], direct) and len(out["images"]) == 6
    assert torch.allclose(out["images"], decode(vqvae, direct))


@pytest.mark.parametrize("kind", ["pixelcnn", "transformer"])
def test_sampling_restores_training_mode_and_threads(kind):
    torch.manual_seed(0)
    model = (GatedPixelCNN(6, 8, 2, grid_size=SHAPE) if kind == "pixelcnn"
             else CodeTransformer(6, 8, 2, heads=2, grid_size=SHAPE)).train()
    threads = torch.get_num_threads()
    model.sample(2, SHAPE)
    assert model.training and torch.get_num_threads() == threads

"""Evaluation: metric values on known cases, baselines, evaluate/predict on a smoke checkpoint,
and clear errors for missing or incompatible checkpoints."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.data import camera
from skimage.metrics import structural_similarity
from skimage.transform import resize

from vqvae_lib.checkpoint import find_checkpoint, load_model
from vqvae_lib.config import get_config
from vqvae_lib.errors import CheckpointError
from vqvae_lib.evaluate import baselines as B
from vqvae_lib.evaluate import breakdown as BD
from vqvae_lib.evaluate import score as E
from vqvae_lib.evaluate import ssim_explained as SX
from vqvae_lib.paths import run_dir_of_checkpoint


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pair():
    """A natural image (camera, 64x64) and a noisy, blurred copy: (2, 1, 64, 64) tensors."""
    rng = np.random.default_rng(0)
    a = resize(camera(), (64, 64), anti_aliasing=True).astype(np.float32)
    b = resize(np.roll(camera(), 60, axis=1), (64, 64), anti_aliasing=True).astype(np.float32)
    x = np.stack([a, b])
    y = np.clip(x + rng.normal(0, 0.08, x.shape), 0, 1).astype(np.float32)
    return torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None]


def _head(rng, size, slice_no):
    """A toy axial slice: head ellipse (CSF rim, grey ring, white core) and its label mask."""
    yy, xx = np.mgrid[:size, :size] / (size - 1) * 2 - 1
    r = 0.55 + 0.3 * math.sin(math.pi * (slice_no + 1) / 7) + rng.uniform(-0.03, 0.03)
    d = np.sqrt((xx / 0.8) ** 2 + yy ** 2) / r
    mask = np.select([d < 0.55, d < 0.8, d < 1.0], [3, 2, 1], 0).astype(np.uint8)
    img = np.choose(mask, [0.0, 0.25, 0.55, 0.85]) + rng.normal(0, 0.02, mask.shape) * (mask > 0)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), mask * 85


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A tiny data set in the OASIS keras_png_slices layout: 3 subjects x 6 slices per split."""
    root = tmp_path_factory.mktemp("oasis_like")
    base = root / "keras_png_slices_data"
    rng = np.random.default_rng(1)
    for s, split in enumerate(("train", "validate", "test")):
        img_dir = base / f"keras_png_slices_{split}"
        seg_dir = base / f"keras_png_slices_seg_{split}"
        img_dir.mkdir(parents=True)
        seg_dir.mkdir(parents=True)
        for subj in range(3):
            sid = f"{10 * s + subj + 1:03d}"
            for k in range(6):
                img, seg = _head(rng, 64, k)
                Image.fromarray(img).save(img_dir / f"case_{sid}_slice_{k}.nii.png")
                Image.fromarray(seg).save(seg_dir / f"seg_{sid}_slice_{k}.nii.png")
    return root


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    """Keep the loader's .npy cache of these throwaway data sets out of data/cache."""
    import vqvae_lib.paths

    cache = tmp_path_factory.getbasetemp() / "cache"
    monkeypatch.setattr(vqvae_lib.paths, "default_cache_dir", lambda: cache)


@pytest.fixture(scope="module")
def smoke_checkpoint(tmp_path_factory):
    """An (untrained) smoke-preset VQ-VAE saved like the trainer does: runs/smoke/checkpoints/best.pt."""
    from vqvae_lib.checkpoint import save_checkpoint
    from vqvae_lib.model.vqvae import build_model

    torch.manual_seed(0)
    cfg = get_config("smoke", device="cpu")
    model = build_model(cfg)
    run = tmp_path_factory.mktemp("runs") / "smoke"
    return save_checkpoint(run / "checkpoints" / "best.pt", model=model, cfg=cfg, epoch=1, step=3)


class PerfectModel(torch.nn.Module):
    """Stand-in whose 'codes' are the images themselves: reconstructions are exact."""

    def encode(self, x):
        self._x = x
        return torch.zeros(len(x), 16, 16, dtype=torch.long)

    def decode_codes(self, codes):
        return self._x


# ------------------------------------------------------------------------------------------
# metric values on known cases
# ------------------------------------------------------------------------------------------
def test_identical_images_score_perfectly(pair):
    x, _ = pair
    s = E.score_images(x, x.clone())
    np.testing.assert_allclose(s["ssim_gaussian"], 1.0, atol=1e-6)
    np.testing.assert_allclose(s["ssim_uniform"], 1.0, atol=1e-6)
    assert np.all(s["mse"] == 0) and np.all(s["psnr"] >= 99)


def test_ssim_agrees_with_scikit_image_in_both_conventions(pair):
    x, y = pair
    s = E.score_images(x, y)
    for i in range(len(x)):
        a, b = x[i, 0].numpy().astype(np.float64), y[i, 0].numpy().astype(np.float64)
        gauss = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
        unif = structural_similarity(a, b, data_range=1.0)
        assert s["ssim_gaussian"][i] == pytest.approx(gauss, abs=1e-4)
        assert s["ssim_uniform"][i] == pytest.approx(unif, abs=1e-4)
    assert 0.1 < s["ssim_gaussian"].mean() < 0.95     # a real, imperfect score


def test_psnr_of_known_noise_level():
    rng = np.random.default_rng(0)
    x = torch.full((4, 1, 64, 64), 0.5)
    sigma = 0.05                                      # no clipping at 0.5 +- 10 sigma
    y = x + torch.from_numpy(rng.normal(0, sigma, x.shape).astype(np.float32))
    s = E.score_images(x, y)
    assert s["psnr"].mean() == pytest.approx(20 * math.log10(1 / sigma), abs=0.15)  # 26.02 dB
    assert s["mse"].mean() == pytest.approx(sigma**2, rel=0.05)


def test_ssim_components_multiply_to_the_ssim_map(pair):
    from vqvae_lib.metrics import ssim_map

    x, y = pair
    comps = SX.ssim_components(x[0, 0].numpy(), y[0, 0].numpy())
    ref = ssim_map(x[:1], y[:1])[0, 0].numpy()
    np.testing.assert_allclose(comps["ssim"], ref, atol=1e-4)
    for k in ("luminance", "contrast"):               # both terms are <= 1 by AM-GM
        assert comps[k].max() <= 1 + 1e-9
    same = SX.ssim_components(x[0, 0].numpy(), x[0, 0].numpy())
    np.testing.assert_allclose(same["ssim"], 1.0, atol=1e-6)


def test_range_mistake_scores_pm1_data_with_the_wrong_range(pair):
    x, y = pair
    r = SX.range_mistake(x, y)
    np.testing.assert_allclose(r["correct"], E.score_images(x, y)["ssim_gaussian"], atol=1e-6)
    a, b = x[0, 0].double().numpy() * 2 - 1, y[0, 0].double().numpy() * 2 - 1
    wrong = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False)
    assert r["pm1_range1"][0] == pytest.approx(wrong, abs=1e-4)
    assert not np.allclose(r["pm1_range1"], r["correct"], atol=1e-3)


def test_per_tissue_errors_put_the_error_where_it_is():
    x = torch.full((2, 1, 32, 32), 0.5)
    masks = torch.zeros(2, 32, 32, dtype=torch.long)
    masks[:, 8:24, 8:24] = 2                           # grey matter in the middle
    y = x.clone()
    y[:, 0][masks == 2] += 0.1
    t = BD.per_tissue_errors(x, y, masks)
    assert set(t) == {"background", "grey matter"}
    assert t["background"]["mae"] == pytest.approx(0.0, abs=1e-7)
    assert t["grey matter"]["mae"] == pytest.approx(0.1, abs=1e-6)
    assert t["grey matter"]["pixel_share"] == pytest.approx(0.25)


def test_bootstrap_interval_brackets_the_mean():
    v = np.random.default_rng(0).uniform(0.5, 0.9, 500)
    lo, hi = E.bootstrap_mean_interval(v, n=32)
    assert lo < v.mean() < hi and hi - lo > 0.02      # 32 images leave real uncertainty


# ------------------------------------------------------------------------------------------
# baselines
# ------------------------------------------------------------------------------------------
def test_jpeg_at_rate_respects_the_budget_and_quality_helps(pair):
    x, _ = pair
    dec, bpp, q = B.jpeg_at_rate(x, 0.5)
    assert dec.shape == (2, 64, 64) and np.all(bpp <= 0.5) and np.all(q >= 1)
    lo, _ = B.jpeg_at_quality(x, 5)
    hi, hi_bpp = B.jpeg_at_quality(x, 90)
    err = lambda d: np.abs(d - x[:, 0].numpy()).mean()  # noqa: E731
    assert err(hi) < err(dec) < err(lo) or err(hi) < err(lo)
    assert np.all(hi_bpp > bpp)


def test_jpeg_payload_excludes_the_header(pair):
    x, _ = pair
    _, payload, total = B.jpeg_roundtrip(x[0, 0].numpy(), 50)
    assert 0 < payload < total - 100                   # tables take a few hundred bytes


def test_downsample_baseline_rates_and_exactness():
    assert B.downsample_bits_per_pixel(128, 32) == 0.5
    assert B.downsample_size_for_rate(128, 0.5) == 32
    flat = np.full((3, 64, 64), 0.4, dtype=np.float32)
    np.testing.assert_allclose(B.downsample_upsample(flat, 16), 0.4, atol=2 / 255)


def test_matched_rate_baselines_land_near_the_target(pair):
    x, _ = pair
    m = B.matched_rate(x, 0.5625)
    assert abs(m["downsample + bicubic"]["bpp"].mean() - 0.5625) < 0.1
    assert np.all(m["JPEG"]["bpp"] <= 0.5625)
    for v in m.values():
        assert v["ssim"].shape == (2,) and np.all(v["ssim"] < 1)


# ------------------------------------------------------------------------------------------
# evaluate / predict on a checkpoint
# ------------------------------------------------------------------------------------------
def test_perfect_reconstructions_pass(data_dir):
    from vqvae_lib.data.dataset import load_split

    slices = load_split("test", data_dir, size=64, verbose=False)
    ev = E.evaluate_model(PerfectModel(), get_config("smoke"), slices)
    assert ev.metrics["ssim_gaussian"]["mean"] == pytest.approx(1.0, abs=1e-6)
    assert ev.metrics["passed"] is True and ev.metrics["code_entropy_bits_per_cell"] == 0


def test_achievable_rate_uses_the_training_histogram_not_the_split_itself(data_dir):
    from vqvae_lib.data.dataset import load_split

    slices = load_split("test", data_dir, size=64, verbose=False)
    cfg = get_config("smoke")                         # K = 32: 5 bits per cell, 16x16 cells
    train_codes = torch.arange(32).repeat(8)          # training used all 32 codes equally
    m = E.evaluate_model(PerfectModel(), cfg, slices, train_codes=train_codes).metrics
    # the test codes are all code 0, so their own histogram has no entropy at all ...
    assert m["code_entropy_bits_per_cell"] == 0
    # ... but a coder knows only the training histogram, where code 0 has p = 1/32: 5 bits
    assert m["train_histogram_bits_per_cell"] == pytest.approx(5.0)
    assert m["achievable_bits_per_pixel"] == pytest.approx(16 * 16 * 5 / 64**2)
    # a training split that used code 0 most makes it cheaper, never free
    skewed = torch.cat([torch.zeros(200, dtype=torch.long), torch.arange(32)])
    m2 = E.evaluate_model(PerfectModel(), cfg, slices, train_codes=skewed).metrics
    assert 0 < m2["achievable_bits_per_pixel"] < m["achievable_bits_per_pixel"]
    # without training codes there is no achievable rate rather than a wrong one
    assert E.evaluate_model(PerfectModel(), cfg, slices).metrics["achievable_bits_per_pixel"] is None


def test_evaluate_writes_metrics_for_every_image(smoke_checkpoint, data_dir):
    m = E.evaluate(smoke_checkpoint, split="test", data_dir=data_dir, max_images=0,
                   device="cpu", verbose=False)
    run = smoke_checkpoint.parent.parent
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(m))
    assert m["n_images"] == m["n_images_in_split"] == 18 and m["subset"] is False
    assert m["split"] == "test" and m["preset"] == "smoke" and m["image_size"] == 64
    assert m["bits_per_pixel"] == pytest.approx(16 * 16 * 5 / 64**2)       # K=32: 5 bits/cell
    assert 0 <= m["code_entropy_bits_per_cell"] <= 5
    assert m["achievable_bits_per_pixel"] <= m["bits_per_pixel"] + 1e-12
    for key in ("mean", "std", "median", "p5"):
        assert key in m["ssim_gaussian"] and key in m["ssim_uniform"]
    assert m["passed"] == (m["ssim_gaussian"]["mean"] > 0.6)
    rows = (run / "metrics_per_image.csv").read_text().strip().splitlines()
    assert rows[0] == "path,subject,slice_index,ssim_gaussian,ssim_uniform,psnr,mse"
    assert len(rows) == 19
    ssims = np.array([float(r.split(",")[3]) for r in rows[1:]])
    assert ssims.mean() == pytest.approx(m["ssim_gaussian"]["mean"], abs=1e-5)


def test_evaluate_caps_to_the_config_and_respects_out_dir(smoke_checkpoint, data_dir, tmp_path):
    m = E.evaluate(smoke_checkpoint, data_dir=data_dir, out_dir=tmp_path, max_images=5,
                   device="cpu", verbose=False)
    assert m["n_images"] == 5 and m["subset"] is True
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "metrics_per_image.csv").is_file()


def test_evaluate_cli(smoke_checkpoint, data_dir, tmp_path, capsys):
    rc = E.main(["--checkpoint", str(smoke_checkpoint), "--data-dir", str(data_dir),
                 "--out-dir", str(tmp_path), "--device", "cpu"])
    assert rc == 0 and "SSIM gaussian" in capsys.readouterr().out
    assert json.loads((tmp_path / "metrics.json").read_text())["split"] == "test"


def test_predict_saves_a_figure(smoke_checkpoint, data_dir):
    from vqvae_lib.evaluate.predict import main, predict

    path = predict(smoke_checkpoint, n=4, data_dir=data_dir, device="cpu")
    assert path == smoke_checkpoint.parent.parent / "figures" / "predict_test.png"
    with Image.open(path) as im:
        assert im.size[0] > 300 and im.size[1] > 150
    assert main(["--checkpoint", str(smoke_checkpoint), "--data-dir", str(data_dir),
                 "--device", "cpu", "--n", "2", "--out", str(path.with_name("p2.png"))]) == 0


# ------------------------------------------------------------------------------------------
# clear errors
# ------------------------------------------------------------------------------------------
def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "runs" / "cpu" / "checkpoints" / "best.pt"
    with pytest.raises(CheckpointError, match="03_training"):
        find_checkpoint(tmp_path / "runs" / "cpu")
    with pytest.raises(CheckpointError, match=str(missing.name)):
        E.evaluate(missing)
    assert E.main(["--checkpoint", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="best.pt"):
        E.evaluate(bad)


def test_incompatible_checkpoint_is_a_clear_error(smoke_checkpoint, tmp_path):
    ckpt = torch.load(smoke_checkpoint, weights_only=True)
    ckpt["config"]["codebook_size"] = 64               # weights say K=32
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="edited.pt"):
        load_model(path)
    prior_like = tmp_path / "prior.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, prior_like)
    with pytest.raises(CheckpointError, match="prior.pt"):
        load_model(prior_like)


def test_run_dir_of_checkpoint():
    assert run_dir_of_checkpoint("runs/cpu/checkpoints/best.pt") == Path("runs/cpu").resolve()
    assert run_dir_of_checkpoint("/tmp/x/model.pt") == Path("/tmp/x")

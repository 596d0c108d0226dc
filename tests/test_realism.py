"""Realism metrics on cases with a known answer (a collage of training pieces must fail the patch
check), the segmenter, and the score command."""

import numpy as np
import pytest
import torch

from vqvae_lib.realism.metrics import (
    PCAFeatures,
    intensity_features,
    one_nn_accuracy,
    patch_memorisation,
    precision_recall,
    shape_features,
    tissue_w1,
)
from vqvae_lib.realism.metrics import realism_metrics as generation_scores

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread


def heads(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Toy 'slices': a bright ellipse (random size, position, contrast) with a dark inner
    ellipse ('ventricle') on a black field. (n, 1, size, size) in [0, 1]."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        cy, cx = 0.5 + g.normal(0, 0.04, 2)
        ry, rx = g.uniform(0.28, 0.42, 2)
        head = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        inner = ((yy - cy) / (ry * 0.35)) ** 2 + ((xx - cx) / (rx * 0.2)) ** 2 < 1
        out[i] = head * g.uniform(0.55, 0.8) - inner * g.uniform(0.2, 0.35)
    return torch.from_numpy(np.clip(out + g.normal(0, 0.02, out.shape), 0, 1))[:, None]


def block_shuffle(images: torch.Tensor, block: int = 4, seed: int = 0) -> torch.Tensor:
    """Shuffle each image's block x block patches, like a code grid with its cells permuted."""
    n, _, H, W = images.shape
    g = torch.Generator().manual_seed(seed)
    p = images.reshape(n, H // block, block, W // block, block).permute(0, 1, 3, 2, 4)
    p = p.reshape(n, -1, block, block)
    p = torch.stack([x[torch.randperm(len(x), generator=g)] for x in p])
    p = p.reshape(n, H // block, W // block, block, block).permute(0, 1, 3, 2, 4)
    return p.reshape(n, 1, H, W)


def test_one_nn_real_vs_real_is_about_one_half():
    a, b = heads(64, 1), heads(64, 2)
    for feat in (shape_features, intensity_features):
        acc = one_nn_accuracy(feat(a), feat(b))
        assert 0.3 <= acc <= 0.65, (feat.__name__, acc)


def test_one_nn_real_vs_noise_is_one():
    a = heads(64, 1)
    noise = torch.rand(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    assert one_nn_accuracy(shape_features(a), shape_features(noise)) == 1.0
    assert one_nn_accuracy(intensity_features(a), intensity_features(noise)) == 1.0


def test_one_nn_real_vs_shuffled_grids_is_near_one_in_shape_space():
    a, b = heads(64, 1), block_shuffle(heads(64, 2))
    assert one_nn_accuracy(shape_features(a), shape_features(b)) >= 0.9
    # Same pixels, other places: the intensity histogram cannot tell (that is why we use both).
    assert one_nn_accuracy(intensity_features(a), intensity_features(b)) < 0.8


def test_one_nn_is_leave_one_out():
    """Identical sets: a point's nearest *other* point is its twin in the other set."""
    a = heads(16, 3)
    assert one_nn_accuracy(shape_features(a), shape_features(a.clone())) == 0.0


def _subjects_of_near_copies(n_subjects: int, per_subject: int, seed: int) -> torch.Tensor:
    """Slices of few "subjects": each subject's slices are near-copies of one head."""
    one_each = heads(n_subjects, seed)
    noise = 0.01 * torch.rand(n_subjects * per_subject, 1, 32, 32,
                              generator=torch.Generator().manual_seed(seed + 100))
    return one_each.repeat_interleave(per_subject, 0) + noise


def test_one_nn_leaves_out_whole_subjects_when_slices_are_not_independent():
    """Real slices from 8 subjects x 8 near-copies against independent heads of the same kind:
    plain leave-one-out finds each slice's twin (accuracy near 1, a false alarm); leaving out
    the subject brings it back to about one half."""
    real = _subjects_of_near_copies(8, 8, seed=1)
    subjects = [f"s{i // 8}" for i in range(64)]
    other = heads(64, 2)
    plain = one_nn_accuracy(shape_features(other), shape_features(real))
    grouped = one_nn_accuracy(shape_features(other), shape_features(real), None, subjects)
    assert plain > 0.75
    assert 0.3 <= grouped <= 0.65, grouped


def test_generation_scores_use_subjects_for_the_floor():
    train, test = heads(128, 5), _subjects_of_near_copies(8, 8, seed=6)
    train_subjects = [f"t{i}" for i in range(128)]
    test_subjects = [f"s{i // 8}" for i in range(64)]
    plain = generation_scores(train[:64], test, train, n=64)
    grouped = generation_scores(train[:64], test, train, n=64, test_subjects=test_subjects,
                                train_subjects=train_subjects)
    assert grouped["one_nn_protocol"] == "leave one subject out"
    assert plain["one_nn_shape"]["floor"] > 0.75 > grouped["one_nn_shape"]["floor"]


def test_precision_recall_known_answers():
    pca = PCAFeatures(heads(200, 9), n_components=16)
    real, same = pca(heads(64, 1)), pca(heads(64, 2))
    p, r = precision_recall(real, same, k=3)
    assert p > 0.7 and r > 0.7
    collapsed = pca(heads(1, 1).repeat(64, 1, 1, 1) + 0.001 * torch.rand(64, 1, 32, 32))
    p, r = precision_recall(real, collapsed, k=3)   # one realistic mode: precise, no recall
    assert p == 1.0 and r < 0.2
    noise = pca(torch.rand(64, 1, 32, 32))
    p, r = precision_recall(real, noise, k=3)
    assert p < 0.1   # (a real outlier's wide ball may catch one noise image)


def test_tissue_w1_is_zero_for_equal_sets_and_the_shift_for_shifted_ones():
    g = np.random.default_rng(0)
    a = g.dirichlet(np.ones(4), 100)
    assert all(v == pytest.approx(0) for v in tissue_w1(a, a.copy()).values())
    b = a.copy()
    b[:, 2] += 0.1
    w = tissue_w1(b, a)
    assert w["grey matter"] == pytest.approx(0.1) and w["CSF"] == pytest.approx(0)


def test_generation_scores_floor_and_memorisation():
    train, test = heads(128, 5), heads(64, 6)
    copies = train[:64] + 0.001   # a prior that replays training slices
    s = generation_scores(copies, test, train, fractions=lambda x: np.tile([0.5, 0.1, 0.2, 0.2], (len(x), 1)), n=64)
    assert s["n_generated"] == 64 and s["n_real"] == 64
    assert s["one_nn_shape"]["floor"] < 0.7
    m = s["memorisation"]
    assert m["generated_median_rmse"] < 0.01 < m["test_median_rmse"]
    assert m["share_closer_than_any_test"] == 1.0
    assert set(s["tissue_w1"]) == {"background", "CSF", "grey matter", "white matter"}
    noise = generation_scores(torch.rand(64, 1, 32, 32), test, train, n=64)
    assert noise["one_nn_shape"]["generated"] == 1.0 and "tissue_w1" not in noise


def test_segmenter_learns_tissue_from_intensity():
    from vqvae_lib.realism.segmenter import segmenter_accuracy, train_segmenter

    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, 4, (40, 8, 8), generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
    images = masks.float()[:, None] / 3 * 0.8 + 0.03 * torch.randn(40, 1, 32, 32, generator=g)
    model = train_segmenter(images[:30], masks[:30], steps=150, batch_size=8)
    acc = segmenter_accuracy(model, images[30:], masks[30:])
    assert acc["pixel_accuracy"] > 0.9
    f = model.fractions(images[30:])
    assert f.shape == (10, 4) and np.allclose(f.sum(1), 1)


def test_score_command_on_a_folder_of_pngs(tmp_path, monkeypatch, capsys):
    import json

    from data_fixtures import make_oasis
    from PIL import Image

    import vqvae_lib.paths
    from vqvae_lib.realism.__main__ import main

    monkeypatch.setattr(vqvae_lib.paths, "default_cache_dir", lambda: tmp_path / "cache")
    data = make_oasis(tmp_path / "data", slices=4, size=32)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, img in enumerate(heads(6, 0)):
        Image.fromarray((img[0].numpy() * 255).astype(np.uint8)).save(folder / f"sample_{i:03d}.png")
    out = tmp_path / "scores.json"
    rc = main([str(folder), "--data-dir", str(data), "--size", "32", "-n", "6",
               "--out", str(out), "--run-dir", str(tmp_path / "run")])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    for key in ("one_nn_shape", "one_nn_intensity", "precision", "recall", "tissue_w1", "memorisation",
                "patch_memorisation"):
        assert key in printed
    assert 0 <= printed["one_nn_shape"]["generated"] <= 1
    assert (tmp_path / "run" / "prior" / "segmenter.pt").is_file()
    assert main([str(tmp_path / "empty"), "--data-dir", str(data)]) == 2
    assert "not a folder" in capsys.readouterr().err
    for bad, says in ((["-n", "0"], "-n 0"), (["--size", "0"], "--size 0")):   # before any work
        with pytest.raises(SystemExit) as e:
            main([str(folder), "--data-dir", str(data), *bad])
        assert e.value.code == 2 and says in capsys.readouterr().err


# ---- memorisation per patch: a collage of training pieces fails, real slices pass ----------------
def collage(train: torch.Tensor, n: int, patch: int = 16, seed: int = 0) -> torch.Tensor:
    """New 'slices' pasted together from training pieces: every patch x patch block of each is a
    block of some training slice at the same place (what a sampler of stored patches draws)."""
    g = torch.Generator().manual_seed(seed)
    N, _, H, W = train.shape
    out = torch.zeros(n, 1, H, W)
    for i in range(n):
        for r in range(0, H, patch):
            for c in range(0, W, patch):
                src = int(torch.randint(0, N, (1,), generator=g))
                out[i, :, r:r + patch, c:c + patch] = train[src, :, r:r + patch, c:c + patch]
    return out


def test_a_collage_of_training_patches_fails_the_patch_check_and_real_slices_pass():
    train, test, unseen = heads(96, 5, size=64), heads(32, 6, size=64), heads(32, 7, size=64)
    pasted = collage(train, 32)
    copied = patch_memorisation(pasted, test, train)
    assert copied["share_near_copies"] > 0.9 and copied["median_ratio"] < 0.05
    fresh = patch_memorisation(unseen, test, train)   # new slices of the same kind: like test
    assert fresh["share_near_copies"] < 0.05 and 0.7 < fresh["median_ratio"] < 1.4
    assert fresh["test_share_near_copies"] <= 0.02
    # whole-slice memorisation cannot see the collage: its slices are no training slice
    whole = generation_scores(pasted, test, train, n=32)["memorisation"]
    assert whole["share_closer_than_any_test"] < 0.5

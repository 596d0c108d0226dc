"""Plot helpers: input conversion, overlays, slice picking, figures saved as PNG."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from data_fixtures import make_oasis  # noqa: E402
from PIL import Image  # noqa: E402

from vqvae_lib import viz as V  # noqa: E402
from vqvae_lib.data import dataset as D  # noqa: E402
from vqvae_lib.data import figures as P  # noqa: E402


def test_to_images_accepts_tensors_and_uint8():
    u8 = np.full((2, 4, 4), 255, np.uint8)
    t = torch.full((2, 1, 4, 4), 0.5)
    assert V.to_images(u8).shape == (2, 4, 4) and V.to_images(u8).max() == 1.0
    assert V.to_images(t).shape == (2, 4, 4) and np.allclose(V.to_images(t), 0.5)
    assert V.to_images(np.zeros((4, 4))).shape == (1, 4, 4)


def test_mask_overlay_leaves_background_transparent():
    rgba = V.mask_to_rgba(np.array([[0, 1], [2, 3]]), alpha=0.4)
    assert rgba.shape == (2, 2, 4) and rgba[0, 0, 3] == 0 and np.allclose(rgba[1, :, 3], 0.4)
    assert len({tuple(rgba[i, j, :3]) for i in range(2) for j in range(2)}) == 4


@pytest.fixture
def sets(tmp_path):
    root = make_oasis(tmp_path / "o", {"train": [1, 2, 3, 4], "validate": [5], "test": [6]}, slices=5)
    return D.load_splits(root, cache_dir=tmp_path / "c", verbose=False)


def test_varied_slices_spread_over_subjects_and_levels(sets):
    idx = P.varied_slices(sets["train"], 4)
    assert len(set(sets["train"].subjects[idx])) == 4
    assert list(sets["train"].slice_index[idx]) == sorted(sets["train"].slice_index[idx])
    assert sets["train"].slice_index[idx][0] == 0 and sets["train"].slice_index[idx][-1] == 4


def test_exploration_figures_are_saved(sets, tmp_path):
    figs = {"grid": P.split_grid(sets, per_split=3), "hist": P.intensity_histograms(sets),
            "mean": P.mean_std_images(sets["train"]), "count": P.slices_per_subject(sets),
            "split": P.split_membership(sets),
            "overlay": P.overlay_masks(sets["test"].images[:2], sets["test"].masks[:2]),
            "grid2": V.image_grid(sets["test"].tensors()[:3], ncol=2)}
    for name, fig in figs.items():
        path = V.save_figure(fig, tmp_path / "run", name)
        with Image.open(path) as im:
            assert im.size[0] > 100 and im.size[1] > 50
    rows = P.split_table(sets)
    assert [r["subjects"] for r in rows] == [4, 1, 1]
    assert all(v == 0 for r in rows for k, v in r.items() if k.startswith("shared"))

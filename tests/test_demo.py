"""The synthetic demo data: OASIS layout and format, determinism, no half-written output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vqvae_lib.data import anatomy, demo
from vqvae_lib.data import dataset as D


def files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """3 subjects x 2 slices (one subject per split), written once for the module."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    demo.build_demo(out, subjects=3, slices=2, seed=0, workers=1, verbose=False)
    return out


def test_layout_and_manifest(tiny):
    base = tiny / "keras_png_slices_data"
    for split in D.SPLITS:
        assert len(list((base / f"keras_png_slices_{split}").glob("case_*_slice_*.nii.png"))) == 2
        assert len(list((base / f"keras_png_slices_seg_{split}").glob("seg_*_slice_*.nii.png"))) == 2
    manifest = json.loads((tiny / demo.MANIFEST).read_text())
    assert "SYNTHETIC" in manifest["what"] and "MNI152" in manifest["made_from"]
    assert sorted(sum(manifest["splits"].values(), [])) == ["001", "002", "003"]
    assert not list(tiny.parent.glob(".demo.tmp-*"))                       # temp folder renamed


def test_slices_have_the_oasis_format(tiny):
    base = tiny / "keras_png_slices_data"
    for p in base.glob("keras_png_slices_train/*.png"):
        with Image.open(p) as im:
            assert im.mode == "L" and im.size == (256, 256)
            a = np.asarray(im)
        with Image.open(base / "keras_png_slices_seg_train" / p.name.replace("case_", "seg_")) as m:
            m = np.asarray(m)
        assert set(np.unique(m)) == {0, 85, 170, 255}
        brain = m > 0
        assert 0.15 < brain.mean() < 0.6                                    # a head, not a dot
        assert a[brain].mean() > 2.5 * a[~brain].mean()                     # the mask fits the image
        assert a[0].max() == 0 and a[:, 0].max() == 0                       # black background
        # white matter brighter than grey matter, grey brighter than CSF (T1 contrast)
        assert a[m == 255].mean() > a[m == 170].mean() > a[m == 85].mean()
        # axial slice like OASIS: front-back runs along the columns (longer than left-right)
        rows, cols = np.nonzero(brain)
        assert np.ptp(cols) > 1.1 * np.ptp(rows)


def test_front_of_head_is_at_the_left(monkeypatch):
    """Mark only the front of the template (MNI y > +30 mm, i.e. anterior) as brain: after the
    random pose and warps it must land in the left part of the image, like OASIS."""
    vol, origin, levels = anatomy.load_template()
    fake = vol.clone()
    y_mm = origin[1] + np.arange(vol.shape[3])                              # (Y,) mm
    front = torch.from_numpy(y_mm > 30).view(1, 1, 1, -1, 1).float()
    fake[:, 1:4] = 0
    fake[:, 2:4] = front * (vol[:, 3:4] > 0.5)                              # WM + brain there
    monkeypatch.setattr(anatomy, "load_template", lambda: (fake, origin, levels))
    _, masks = anatomy.make_subject(0, 3, n_slices=2)
    cols = np.nonzero(masks > 0)[2]
    assert len(cols) > 500 and np.percentile(cols, 99) < 110               # all in the left part


def test_same_seed_same_bytes_any_worker_count(tiny, tmp_path):
    again = demo.build_demo(tmp_path / "again", subjects=3, slices=2, seed=0, workers=2,
                          verbose=False)
    assert files(again) == files(tiny)
    other = demo.build_demo(tmp_path / "other", subjects=3, slices=2, seed=1, workers=1,
                          verbose=False)
    assert len(files(other)) == len(files(tiny))
    assert sorted(files(other).values()) != sorted(files(tiny).values())


def test_subjects_differ(tiny):
    a, _ = demo.make_subject(0, 0, n_slices=1)
    b, _ = demo.make_subject(0, 1, n_slices=1)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5


def test_loader_reads_it_as_demo(tiny, tmp_path):
    s = D.load_split("validate", tiny, size=64, cache_dir=tmp_path / "c", verbose=False)
    assert s.source == "demo" and s.images.shape == (2, 64, 64) and s.masks.max() == 3


def test_existing_demo_is_kept_and_foreign_folder_refused(tiny, tmp_path):
    stamp = (tiny / demo.MANIFEST).stat().st_mtime_ns
    assert demo.ensure_demo(tiny) == tiny and (tiny / demo.MANIFEST).stat().st_mtime_ns == stamp
    old = tmp_path / "old"
    old.mkdir()
    (old / demo.MANIFEST).write_text(json.dumps({"version": demo.GENERATOR_VERSION - 1}))
    demo.ensure_demo(old, subjects=3, slices=1, verbose=False)             # outdated -> rebuilt
    assert json.loads((old / demo.MANIFEST).read_text())["version"] == demo.GENERATOR_VERSION
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my files")
    with pytest.raises(D.DataError, match="not a demo data set"):
        demo.build_demo(foreign, subjects=3, slices=1, verbose=False)
    assert (foreign / "notes.txt").exists()


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def boom(seed, subject, n_slices=24, size=256):
        calls.append(subject)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return np.zeros((n_slices, 8, 8), np.uint8), np.zeros((n_slices, 8, 8), np.uint8)

    monkeypatch.setattr(demo, "make_subject", boom)
    with pytest.raises(KeyboardInterrupt):
        demo.build_demo(tmp_path / "demo", subjects=3, slices=1, workers=1, verbose=False)
    assert list(tmp_path.iterdir()) == []

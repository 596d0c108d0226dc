"""The OASIS loader: layout, order, tensors, resizing, split by subject, the uint8 cache."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from data_fixtures import image_for, make_oasis, mask_for, split_dir
from PIL import Image

from vqvae_lib import data as D
from vqvae_lib.common import SPLITS
from vqvae_lib.data import cache as cache_module
from vqvae_lib.data.dataset import DEMO_MANIFEST
from vqvae_lib.errors import DataError


def load(split, root, cache, **kw):
    return D.load_split(split, root, cache_dir=cache, verbose=False, **kw)


def test_loads_course_layout_in_subject_slice_order(oasis, cache):
    s = load("train", oasis, cache)
    assert s.source == "oasis" and s.split == "train" and len(s) == 4 * 3
    assert s.images.dtype == np.uint8 and s.images.shape == (12, 32, 32)
    assert list(s.subjects[:4]) == ["001", "001", "001", "002"]
    assert list(s.slice_index[:4]) == [0, 1, 2, 0]
    np.testing.assert_array_equal(s.images[4], image_for(2, 1))
    np.testing.assert_array_equal(s.masks[4], mask_for(2, 1) // 85)        # labels 0..3
    assert s.paths[4].endswith("case_002_slice_1.nii.png") and os.path.isfile(s.paths[4])
    assert s.n_subjects == 4 and s.root.name == "keras_png_slices_data"


def test_slices_sort_numerically_not_as_text(tmp_path, cache):
    root = make_oasis(tmp_path / "o", {"train": [1], "validate": [2], "test": [3]}, slices=12)
    assert list(load("train", root, cache).slice_index) == list(range(12))   # 10 after 9, not 1


def test_tensors_are_float_in_unit_range_with_channel_axis(oasis, cache):
    s = load("validate", oasis, cache)
    x, m = s.tensors(), s.mask_tensors()
    assert x.shape == (6, 1, 32, 32) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert torch.allclose(x[0, 0] * 255, torch.from_numpy(s.images[0]).float())
    assert m.shape == (6, 32, 32) and m.dtype == torch.long and set(m.unique().tolist()) == {0, 1, 2, 3}


def test_resize_averages_areas_for_images_and_keeps_labels_for_masks(tmp_path, cache):
    root = make_oasis(tmp_path / "o", {"train": [1], "validate": [2], "test": [3]}, slices=1)
    checker = (np.indices((32, 32)).sum(0) % 2 * 200).astype(np.uint8)   # 0/200 pixel checkerboard
    Image.fromarray(checker).save(split_dir(root) / "case_001_slice_0.nii.png")
    s = load("train", root, cache, size=16)
    assert s.images.shape == (1, 16, 16) and s.masks.shape == (1, 16, 16)
    assert np.all(s.images == 100)                       # area average, not a sampled pixel
    assert set(np.unique(s.masks)) <= {0, 1, 2, 3}
    assert load("train", root, cache, size=(8, 12)).images.shape == (1, 8, 12)


def test_masks_false_or_absent_gives_none(tmp_path, cache):
    assert load("train", make_oasis(tmp_path / "a"), cache, masks=False).masks is None
    s = load("train", make_oasis(tmp_path / "b", masks=False), cache)
    assert s.masks is None
    with pytest.raises(DataError, match="without masks"):
        s.mask_tensors()


def test_subset_keeps_fields_aligned(oasis, cache):
    s = load("train", oasis, cache)
    sub = s.subset([3, 7])
    assert len(sub) == 2 and sub.paths == [s.paths[3], s.paths[7]]
    np.testing.assert_array_equal(sub.masks[1], s.masks[7])
    assert list(sub.subjects) == [s.subjects[3], s.subjects[7]]


def test_resolve_order_argument_env_oasis_demo(tmp_path, monkeypatch):
    data_root = tmp_path / "data"
    monkeypatch.setattr("vqvae_lib.data.dataset.data_root", lambda: data_root)
    monkeypatch.delenv("VQVAE_DATA_DIR", raising=False)
    demo = make_oasis(data_root / "demo")
    (demo / DEMO_MANIFEST).write_text("{}")
    assert D.resolve_data_dir() == (demo / "keras_png_slices_data", "demo")
    oasis = make_oasis(data_root / "oasis", wrapper=False)                 # split folders directly
    assert D.resolve_data_dir() == (oasis, "oasis")
    other = make_oasis(tmp_path / "elsewhere")
    monkeypatch.setenv("VQVAE_DATA_DIR", str(other))
    assert D.resolve_data_dir()[0] == other / "keras_png_slices_data"
    assert D.resolve_data_dir(demo)[1] == "demo"                            # argument wins
    inner = demo / "keras_png_slices_data"                                  # what S.data_dir holds
    assert D.resolve_data_dir(inner) == (inner, "demo")


def test_finds_layout_inside_an_unzipped_wrapper_folder(tmp_path, cache):
    make_oasis(tmp_path / "download" / "course_zip")
    assert len(load("test", tmp_path / "download", cache)) == 6


def test_plain_folder_is_split_by_subject_deterministically(tmp_path, cache):
    flat = tmp_path / "flat"
    flat.mkdir()
    for s in range(1, 21):
        for k in range(2):
            Image.fromarray(image_for(s, k)).save(flat / f"case_{s:03d}_slice_{k}.nii.png")
            Image.fromarray(mask_for(s, k)).save(flat / f"seg_{s:03d}_slice_{k}.nii.png")
    sets = {sp: load(sp, flat, cache) for sp in SPLITS}
    ids = {sp: set(v.subjects) for sp, v in sets.items()}
    assert [len(ids[sp]) for sp in SPLITS] == [16, 2, 2]
    assert set.union(*ids.values()) == {f"{s:03d}" for s in range(1, 21)}
    assert not any(D.subject_overlap(sets).values())
    assert all(v.source == "custom" and v.masks is not None for v in sets.values())
    again = load("validate", flat, cache, use_cache=False)
    assert set(again.subjects) == ids["validate"]                           # same split every time


def test_cache_is_reused_without_decoding(oasis, cache, monkeypatch):
    first = load("train", oasis, cache, size=16)
    assert not first.cache_hit and len(list(cache.glob("*.npy"))) == 2     # images + masks

    def no_decoding(*a, **k):
        raise AssertionError("decoded PNGs although the cache is valid")

    monkeypatch.setattr(cache_module, "decode_all", no_decoding)
    second = load("train", oasis, cache, size=16)
    assert second.cache_hit
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.masks, second.masks)


def test_cache_is_invalidated_by_changed_added_or_removed_files(oasis, cache):
    before = load("train", oasis, cache)
    target = split_dir(oasis) / "case_001_slice_0.nii.png"
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(target)
    os.utime(target, ns=(1, 1))                                             # new mtime for sure
    changed = load("train", oasis, cache)
    assert not changed.cache_hit and np.all(changed.images[0] == 7)
    assert len(list(cache.glob("images-train-*.npy"))) == 1                 # stale entry removed
    for kind, name in (("", "case_009_slice_0.nii.png"), ("seg_", "seg_009_slice_0.nii.png")):
        shutil.copy(split_dir(oasis, seg=bool(kind)) / f"{kind or 'case_'}002_slice_0.nii.png",
                    split_dir(oasis, seg=bool(kind)) / name)
    added = load("train", oasis, cache)
    assert not added.cache_hit and len(added) == len(before) + 1
    for p in (split_dir(oasis) / "case_009_slice_0.nii.png", split_dir(oasis, seg=True) / "seg_009_slice_0.nii.png"):
        p.unlink()
    removed = load("train", oasis, cache)
    assert not removed.cache_hit and len(removed) == len(before)


def test_other_size_is_a_separate_cache_entry_and_damaged_cache_is_rebuilt(oasis, cache):
    load("test", oasis, cache, size=16)
    load("test", oasis, cache)
    assert len(list(cache.glob("images-test-*.npy"))) == 2
    for f in cache.glob("images-test-16x16-*.npy"):
        f.write_bytes(f.read_bytes()[:100])                                # truncated cache file
    again = load("test", oasis, cache, size=16)
    assert not again.cache_hit and again.images.shape == (6, 16, 16)


def test_no_temporary_files_left_in_cache(oasis, cache):
    load("train", oasis, cache)
    assert not [p for p in cache.iterdir() if ".tmp" in p.name]


def test_load_splits_and_one_line_message(oasis, cache, capsys):
    sets = D.load_splits(oasis, cache_dir=cache)
    assert list(sets) == list(SPLITS) and not any(D.subject_overlap(sets).values())
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("data: ") and "(oasis" in line for line in lines)


def test_load_splits_warns_when_a_subject_is_in_two_splits(tmp_path, cache):
    root = make_oasis(tmp_path / "o", {"train": [1, 2], "validate": [2], "test": [3]})
    with pytest.warns(D.DataWarning, match="002"):
        D.load_splits(root, cache_dir=cache, verbose=False)


def test_real_oasis_pair_has_the_documented_format(shared_dir, tmp_path, cache):
    sample = shared_dir / "oasis_sample"
    if not sample.is_dir():
        pytest.skip("../shared/oasis_sample is absent")
    with Image.open(sample / "case_001_slice_0.nii.png") as im:
        assert im.mode == "L" and im.size == (256, 256)
    img = D.read_image(sample / "case_001_slice_0.nii.png")
    assert img.dtype == np.uint8 and img.shape == (256, 256) and len(np.unique(img)) > 200
    labels = D.read_mask(sample / "seg_001_slice_0.nii.png")
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    # the loader reads it in the course layout (files copied to a temporary folder only)
    for split in SPLITS:
        img_dir = tmp_path / "o" / f"keras_png_slices_{split}"
        seg_dir = tmp_path / "o" / f"keras_png_slices_seg_{split}"
        img_dir.mkdir(parents=True)
        seg_dir.mkdir(parents=True)
        shutil.copy(sample / "case_001_slice_0.nii.png", img_dir)
        shutil.copy(sample / "seg_001_slice_0.nii.png", seg_dir)
    s = load("train", tmp_path / "o", cache, size=128)
    assert s.source == "oasis" and list(s.subjects) == ["001"] and list(s.slice_index) == [0]
    assert s.images.shape == (1, 128, 128) and s.masks.shape == (1, 128, 128)
    brain = s.masks[0] > 0
    assert s.images[0][brain].mean() > 3 * s.images[0][~brain].mean()      # image and mask agree

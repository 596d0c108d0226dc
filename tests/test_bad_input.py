"""Every kind of bad input gives a clear message naming the file (or is fixed with a warning,
as documented in docs/DATA.md), and never leaves a half-written cache behind."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import image_for, make_oasis, mask_for, split_dir
from PIL import Image

from vqvae_lib.data import dataset as D
from vqvae_lib.errors import DataError


def load(root, cache, split="train", **kw):
    return D.load_split(split, root, cache_dir=cache, verbose=False, **kw)


def no_cache_written(cache):
    return not cache.exists() or not any(cache.iterdir())


def test_truncated_png_names_the_file_and_writes_no_cache(oasis, cache):
    bad = split_dir(oasis) / "case_002_slice_1.nii.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match=r"case_002_slice_1\.nii\.png.*(damaged|delete)"):
        load(oasis, cache)
    assert no_cache_written(cache)


def test_not_a_png_at_all_names_the_file(oasis, cache):
    (split_dir(oasis) / "case_003_slice_0.nii.png").write_text("<html>404 not found</html>")
    with pytest.raises(DataError, match="case_003_slice_0"):
        load(oasis, cache)


def test_rgb_png_is_converted_to_grey_with_a_warning(oasis, cache):
    grey = image_for(1, 0)
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(split_dir(oasis) / "case_001_slice_0.nii.png")
    with pytest.warns(D.DataWarning, match=r"RGB -> 8-bit grey.*case_001_slice_0"):
        s = load(oasis, cache)
    np.testing.assert_array_equal(s.images[0], grey)


def test_16bit_png_is_scaled_to_8bit_with_a_warning(oasis, cache):
    deep = image_for(1, 0).astype(np.uint16) * 64                          # 12-bit-like values
    Image.fromarray(deep).save(split_dir(oasis) / "case_001_slice_0.nii.png")
    with Image.open(split_dir(oasis) / "case_001_slice_0.nii.png") as im:
        assert im.mode.startswith("I")
    with pytest.warns(D.DataWarning, match="8-bit"):
        s = load(oasis, cache)
    assert s.images.dtype == np.uint8 and s.images[0].max() == 255
    assert set(np.unique(s.images[0])) == {0, 255}                          # disc kept, rescaled


def test_image_of_another_size_is_resized_with_a_warning(oasis, cache):
    Image.fromarray(image_for(1, 0, size=64)).save(split_dir(oasis) / "case_001_slice_0.nii.png")
    Image.fromarray(mask_for(1, 0, size=64)).save(split_dir(oasis, seg=True) / "seg_001_slice_0.nii.png")
    with pytest.warns(D.DataWarning, match=r"not 32x32.*case_001_slice_0"):
        s = load(oasis, cache)
    assert s.images.shape == (12, 32, 32) and s.masks.shape == (12, 32, 32)
    assert abs(int(s.images[0].max()) - int(image_for(1, 0).max())) <= 1


def test_stray_non_image_files_are_skipped_with_a_warning(oasis, cache):
    (split_dir(oasis) / "notes.txt").write_text("slices from the course zip")
    (split_dir(oasis) / ".DS_Store").write_bytes(b"\0\1")
    (split_dir(oasis) / "subfolder").mkdir()
    with pytest.warns(D.DataWarning, match="notes.txt"):
        s = load(oasis, cache)
    assert len(s) == 12 and not any("notes" in p or "DS_Store" in p for p in s.paths)


def test_empty_split_folder_names_the_folder(tmp_path, cache):
    root = make_oasis(tmp_path / "o", {"train": [1], "validate": [], "test": [3]})
    with pytest.raises(DataError, match=r"keras_png_slices_validate.*no PNG images"):
        load(root, cache, split="validate")


def test_missing_split_folder_names_the_folder(oasis, cache):
    for p in split_dir(oasis, "test").iterdir():
        p.unlink()
    split_dir(oasis, "test").rmdir()
    with pytest.raises(DataError, match=r"keras_png_slices_test is missing"):
        load(oasis, cache, split="test")


def test_mask_with_values_outside_the_four_names_the_mask(oasis, cache):
    blurred = mask_for(1, 2).astype(np.uint8)
    blurred[0, :5] = 128                                                    # interpolated value
    Image.fromarray(blurred).save(split_dir(oasis, seg=True) / "seg_001_slice_2.nii.png")
    with pytest.raises(DataError, match=r"seg_001_slice_2\.nii\.png has values \[128\]"):
        load(oasis, cache)
    assert no_cache_written(cache) or not list(cache.glob("masks-*"))


def test_mask_already_in_labels_0_to_3_is_accepted(oasis, cache):
    Image.fromarray((mask_for(1, 0) // 85).astype(np.uint8)).save(
        split_dir(oasis, seg=True) / "seg_001_slice_0.nii.png")
    np.testing.assert_array_equal(load(oasis, cache).masks[0], mask_for(1, 0) // 85)


def test_mask_without_its_image_names_both(oasis, cache):
    (split_dir(oasis) / "case_004_slice_2.nii.png").unlink()
    with pytest.raises(DataError, match=r"seg_004_slice_2\.nii\.png has no image.*case_004_slice_2"):
        load(oasis, cache)
    assert len(load(oasis, cache, masks=False)) == 11                       # images alone still load


def test_image_without_its_mask_names_both(oasis, cache):
    (split_dir(oasis, seg=True) / "seg_003_slice_0.nii.png").unlink()
    with pytest.raises(DataError, match=r"case_003_slice_0\.nii\.png has no mask.*masks=False"):
        load(oasis, cache)


def test_mask_of_another_size_than_its_image_is_refused(oasis, cache):
    Image.fromarray(mask_for(2, 0, size=16)).save(split_dir(oasis, seg=True) / "seg_002_slice_0.nii.png")
    with pytest.raises(DataError, match=r"seg_002_slice_0\.nii\.png is 16x16 but its image"):
        load(oasis, cache)


def test_missing_data_dir_argument_names_it(tmp_path, cache):
    with pytest.raises(DataError, match=r"nowhere.*does not exist.*make data"):
        load(tmp_path / "nowhere", cache)


def test_missing_data_dir_from_environment_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("VQVAE_DATA_DIR", str(tmp_path / "typo"))
    with pytest.raises(DataError, match=r"typo.*\$VQVAE_DATA_DIR"):
        D.resolve_data_dir()


def test_no_data_anywhere_says_how_to_get_some(tmp_path, monkeypatch):
    monkeypatch.delenv("VQVAE_DATA_DIR", raising=False)
    monkeypatch.setattr("vqvae_lib.data.dataset.data_root", lambda: tmp_path / "data")
    with pytest.raises(DataError, match=r"make data.*oasis"):
        D.resolve_data_dir()


def test_folder_without_any_images_is_refused(tmp_path):
    (tmp_path / "oasis").mkdir()
    (tmp_path / "oasis" / "readme.txt").write_text("unzip here")
    with pytest.raises(DataError, match=r"neither the OASIS split folders.*nor PNG images"):
        D.resolve_data_dir(tmp_path / "oasis")


# ---- operating-system trouble in a data folder: a DataError naming the file and the right fix ----
def test_symlink_loop_in_a_split_folder_names_the_link(oasis, cache):
    loop = split_dir(oasis) / "case_009_slice_0.nii.png"
    loop.symlink_to(loop.name)                                               # points at itself
    with pytest.raises(DataError, match=r"case_009_slice_0\.nii\.png.*symbolic link loop"):
        load(oasis, cache)
    assert no_cache_written(cache)


def test_dangling_link_names_the_link_and_its_target(oasis, cache):
    (split_dir(oasis) / "case_009_slice_0.nii.png").symlink_to(oasis / "gone" / "case_009.png")
    with pytest.raises(DataError, match=r"case_009_slice_0\.nii\.png \(a symbolic link to .*gone.*dangling"):
        load(oasis, cache)


def test_split_folder_that_is_a_dangling_link_is_named(oasis, cache):
    test_dir = split_dir(oasis, "test")
    for p in test_dir.iterdir():
        p.unlink()
    test_dir.rmdir()
    test_dir.symlink_to(oasis / "unmounted_disk")
    with pytest.raises(DataError, match=r"keras_png_slices_test \(a symbolic link to .*unmounted_disk.*dangling"):
        load(oasis, cache, split="test")


def test_unreadable_file_says_permission_not_damaged(oasis, cache, monkeypatch):
    import PIL.Image

    real_open = PIL.Image.open
    locked = split_dir(oasis) / "case_002_slice_1.nii.png"

    def open_(fp, *a, **k):                       # as a non-root user would see a chmod 000 file
        if str(fp) == str(locked):
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *a, **k)

    monkeypatch.setattr(PIL.Image, "open", open_)
    with pytest.raises(DataError, match=r"case_002_slice_1\.nii\.png cannot be read \(permission denied\).*chmod") as e:
        load(oasis, cache)
    assert "damaged" not in str(e.value)
    assert no_cache_written(cache)

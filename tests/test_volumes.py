"""Volumes -> course slices (vqvae_lib.slices): orientation, masks, layout, bad input.

Synthetic subjects are nilearn's MNI152 template (the demo's copy, at 2 mm) and its tissue maps, stored in four
orientations and formats; a bright marker block in the subject's left-front tells where the
front and the left end up. The real FreeSurfer subject in ../shared/volumes is checked
against its own label map (skipped when ../shared is absent).
"""

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, ornt_transform

from vqvae_lib.data import load_split, load_splits
from vqvae_lib.data.convert import MANIFEST, convert, main
from vqvae_lib.data.volume_labels import freesurfer_tissue, labels_to_tissue
from vqvae_lib.errors import DataError

N_SLICES = 8
MARKER = dict(x=(-56, -40), y=(20, 40))   # mm: the subject's left, front half of the head


@pytest.fixture(scope="module")
def template():
    """(T1, tissue 0..3, affine, marker) of the demo's MNI152 template at 2 mm, RAS, + a marker."""
    from vqvae_lib.data.anatomy import load_template

    vol, origin, _ = load_template()                        # (1, 5, Z, Y, X) at 1 mm
    t1, gm, wm, brain = (vol[0, c].numpy().transpose(2, 1, 0)[::2, ::2, ::2] for c in range(4))
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = origin
    brain = brain > 0.5
    csf = np.clip(brain - gm - wm, 0, 1)
    tissue = (np.argmax(np.stack([csf, gm, wm]), 0) + 1) * brain
    data = np.ascontiguousarray(t1, dtype=np.float32)
    ijk = np.indices(data.shape).reshape(3, -1)
    xyz = (affine[:3, :3] @ ijk + affine[:3, 3:]).reshape(3, *data.shape)
    block = ((xyz[0] > MARKER["x"][0]) & (xyz[0] < MARKER["x"][1]) &
             (xyz[1] > MARKER["y"][0]) & (xyz[1] < MARKER["y"][1]) & brain)
    data[block] = data.max() * 1.3                       # brighter than anything else
    return data, tissue.astype(np.uint8), affine, block


def _reoriented(data, affine, codes):
    img = nib.Nifti1Image(data, affine).as_reoriented(ornt_transform(axcodes2ornt("RAS"),
                                                                      axcodes2ornt(codes)))
    return np.asarray(img.dataobj), img.affine


def _write(folder, name, fmt, codes, data, tissue, affine):
    folder.mkdir(parents=True, exist_ok=True)
    d, a = _reoriented(data, affine, codes)
    t, _ = _reoriented(tissue, affine, codes)
    if fmt == "mgz":
        nib.save(nib.MGHImage(d.astype(np.float32), a), folder / f"{name}.mgz")
        nib.save(nib.MGHImage((t * 1).astype(np.int32), a), folder / f"{name}_seg.mgz")
    elif fmt == "analyze":
        nib.save(nib.AnalyzeImage(d.astype(np.float32), a), folder / f"{name}.img")
        nib.save(nib.AnalyzeImage(t.astype(np.uint8), a), folder / f"{name}_fseg.img")
    else:
        ext = ".nii.gz" if fmt == "nii.gz" else ".nii"
        nib.save(nib.Nifti1Image(d, a), folder / f"{name}{ext}")
        nib.save(nib.Nifti1Image(t.astype(np.uint8), a), folder / f"{name}_seg{ext}")


SUBJECTS = [("sub-ras", "nii.gz", "RAS"), ("sub-lia", "mgz", "LIA"),
            ("sub-las", "analyze", "LAS"), ("sub-psl", "nii", "PSL")]


@pytest.fixture(scope="module")
def converted(template, tmp_path_factory):
    data, tissue, affine, _ = template
    root = tmp_path_factory.mktemp("volumes")
    for name, fmt, codes in SUBJECTS:
        _write(root / "src" / name, name, fmt, codes, data, tissue, affine)
    manifest = convert(root / "src", root / "out", n_slices=N_SLICES, workers=1, verbose=False)
    return root / "out", manifest


def _slices(out, manifest, sid):
    from PIL import Image

    split = next(s["split"] for s in manifest["subjects"] if s["id"] == sid)
    base = out / "keras_png_slices_data"
    img = [np.asarray(Image.open(base / f"keras_png_slices_{split}" / f"case_{sid}_slice_{k}.nii.png"))
           for k in range(N_SLICES)]
    seg = [np.asarray(Image.open(base / f"keras_png_slices_seg_{split}" / f"seg_{sid}_slice_{k}.nii.png"))
           for k in range(N_SLICES)]
    return np.stack(img), np.stack(seg)


def _lookup(volume, vol_affine, pixel_to_world, shape):
    """Nearest voxel of ``volume`` under every output pixel (s, row, col)."""
    s, r, c = np.indices(shape).reshape(3, -1)
    world = np.asarray(pixel_to_world) @ np.stack([r, c, s, np.ones_like(s)])
    ijk = np.round(np.linalg.inv(vol_affine) @ world)[:3].astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(volume.shape)[:, None]), 0)
    out = np.zeros(ijk.shape[1], volume.dtype)
    out[inside] = volume[tuple(ijk[:, inside])]
    return out.reshape(shape)


@pytest.mark.slow                      # ~10-25 s of volume I/O for the module
def test_every_orientation_gives_the_same_slices(converted):
    out, manifest = converted
    ids = sorted(s["id"] for s in manifest["subjects"])
    assert ids == sorted(n.removeprefix("sub-") for n, _, _ in SUBJECTS)   # common "sub-" dropped
    assert {s["orientation_in_file"] for s in manifest["subjects"]} == {"RAS", "LIA", "LAS", "PSL"}
    ref_img, ref_seg = _slices(out, manifest, "ras")
    assert ref_img.shape == (N_SLICES, 256, 256) and set(np.unique(ref_seg)) == {0, 85, 170, 255}
    for sid in ids:
        img, seg = _slices(out, manifest, sid)
        assert (seg == ref_seg).mean() > 0.999, sid
        assert np.abs(img.astype(int) - ref_img).mean() < 1.0, sid


@pytest.mark.slow                      # ~10-25 s of volume I/O for the module
def test_masks_and_images_agree_with_the_template(converted):
    """Each pixel, mapped to world mm by the manifest, lands on the same tissue in the file."""
    out, manifest = converted
    for entry in manifest["subjects"]:
        img, seg = _slices(out, manifest, entry["id"])
        labels, t1 = nib.load(entry["labels"]), nib.load(entry["image"])
        expected = _lookup(np.asarray(labels.dataobj), labels.affine, entry["pixel_to_world"],
                           seg.shape)
        assert (seg // 85 == expected).mean() > 0.97, entry["id"]
        raw = _lookup(t1.get_fdata(), t1.affine, entry["pixel_to_world"], img.shape)
        assert np.corrcoef(img.ravel(), raw.ravel())[0, 1] > 0.95, entry["id"]


@pytest.mark.slow                      # ~10-25 s of volume I/O for the module
def test_front_of_the_head_at_the_left_and_left_hemisphere_on_top(converted):
    out, manifest = converted
    for sid in ("ras", "lia", "las", "psl"):
        img, _ = _slices(out, manifest, sid)
        bright = img >= 254                                   # the marker saturates
        s, r, c = np.nonzero(bright)
        assert len(r) > 100, sid
        assert c.mean() < 100, f"{sid}: the front of the head is not at the left"
        assert r.mean() < 100, f"{sid}: the subject's left is not in the top rows"


@pytest.mark.slow                      # ~10-25 s of volume I/O for the module
def test_split_by_subject_and_the_loader_reads_it(converted, tmp_path):
    out, manifest = converted
    assert sum(len(v) for v in manifest["splits"].values()) == 4
    assert all(len(v) >= 1 for v in manifest["splits"].values())
    sets = load_splits(out, masks=True, cache_dir=tmp_path, verbose=False)
    assert sum(len(s) for s in sets.values()) == 4 * N_SLICES
    for split, s in sets.items():
        assert s.source == "oasis" and s.size == (256, 256) and s.masks.max() == 3
        assert sorted(set(s.subjects.tolist())) == manifest["splits"][split]
    assert json.loads((out / MANIFEST).read_text())["slices_per_subject"] == N_SLICES


def test_label_tables():
    assert [freesurfer_tissue(v) for v in (0, 4, 24, 3, 11101, 12175, 1035, 2, 41, 251)] == \
        [0, 1, 1, 2, 2, 2, 2, 3, 3, 3]
    assert freesurfer_tissue(9999) is None
    fast = np.array([[0, 1], [2, 3]])
    assert labels_to_tissue(fast, "x")[0].tolist() == fast.tolist()
    with pytest.raises(DataError, match="9999"):
        labels_to_tissue(np.array([0, 2, 9999]), "lab.nii")
    with pytest.raises(DataError, match="non-integer"):
        labels_to_tissue(np.array([0.0, 0.4]), "pve.nii")


# ---- bad input ------------------------------------------------------------------------------
def _nii(path, data, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(data), np.eye(4) if affine is None else affine), path)


def _cube(n=24):
    a = np.zeros((n, n, n), np.float32)
    a[4:-4, 4:-4, 4:-4] = 100
    return a


def _expect_error(src, tmp_path, match, **kw):
    with pytest.raises(DataError, match=match):
        convert(src, tmp_path / "out", workers=1, verbose=False, **kw)
    assert not (tmp_path / "out").exists()


def test_not_a_volume(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "scan.nii.gz").write_bytes(b"this is not a NIfTI file")
    _expect_error(tmp_path / "src", tmp_path, r"scan\.nii\.gz is not a volume")


def test_2d_and_4d_and_empty_volumes(tmp_path):
    _nii(tmp_path / "a" / "flat.nii", np.ones((32, 32), np.float32))
    _expect_error(tmp_path / "a", tmp_path, r"flat\.nii is 2-D")
    _nii(tmp_path / "b" / "fmri.nii", np.ones((8, 8, 8, 5), np.float32))
    _expect_error(tmp_path / "b", tmp_path, r"fmri\.nii is 4-D")
    _nii(tmp_path / "c" / "blank.nii", np.zeros((16, 16, 16), np.float32))
    _expect_error(tmp_path / "c", tmp_path, r"blank\.nii is empty")


def test_labels_of_another_shape_or_orientation(tmp_path):
    lab = (_cube() > 0).astype(np.uint8) * 3
    _nii(tmp_path / "a" / "s1.nii", _cube())
    _nii(tmp_path / "a" / "s1_seg.nii", lab[:, :, :20])
    _expect_error(tmp_path / "a", tmp_path, r"s1_seg\.nii does not match")
    flipped = np.diag([-1.0, 1, 1, 1])
    _nii(tmp_path / "b" / "s1.nii", _cube())
    _nii(tmp_path / "b" / "s1_seg.nii", lab, flipped)
    _expect_error(tmp_path / "b", tmp_path, r"orientation LAS vs RAS")


def test_unknown_label_values_and_orphan_labels(tmp_path):
    lab = (_cube() > 0).astype(np.int32) * 9999
    _nii(tmp_path / "a" / "s1.nii", _cube())
    _nii(tmp_path / "a" / "s1_seg.nii", lab)
    _expect_error(tmp_path / "a", tmp_path, r"s1_seg\.nii has values \[9999\]")
    for name in ("s1.nii", "s2.nii"):
        _nii(tmp_path / "b" / name, _cube())
    _nii(tmp_path / "b" / "other_seg.nii", (_cube() > 0).astype(np.uint8))
    _expect_error(tmp_path / "b", tmp_path, r"other_seg\.nii belongs to no image")


def test_missing_header_missing_labels_and_occupied_output(tmp_path):
    (tmp_path / "a").mkdir()
    nib.save(nib.AnalyzeImage(_cube().astype(np.int16), np.eye(4)), tmp_path / "a" / "x.img")
    (tmp_path / "a" / "x.hdr").unlink()
    _expect_error(tmp_path / "a", tmp_path, r"x\.img has no header x\.hdr")
    for name in ("s1", "s2"):
        _nii(tmp_path / "b" / name / f"{name}.nii", _cube())
    _nii(tmp_path / "b" / "s1" / "s1_seg.nii", (_cube() > 0).astype(np.uint8) * 2)
    _expect_error(tmp_path / "b", tmp_path, r"1 of 2 subjects have no label volume")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        convert(tmp_path / "b", tmp_path / "out", masks=False, workers=1, verbose=False)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_cli_reports_one_line_and_exit_code_2(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Source folder") and "nowhere" in err and "\n" not in err


# ---- the real FreeSurfer subject ------------------------------------------------------------
@pytest.fixture(scope="module")
def freesurfer(shared_dir, tmp_path_factory):
    src = shared_dir / "volumes"
    if not (src / "norm.mgz").is_file():
        pytest.skip("../shared/volumes/norm.mgz is absent")
    root = tmp_path_factory.mktemp("fs")
    shutil.copytree(src, root / "src" / "bert" / "mri")       # OUT beside SRC, never inside it
    manifest = convert(root / "src", root / "out", n_slices=12, workers=1, verbose=False)
    labels = nib.load(src / "aparc.a2009s+aseg.mgz")
    return root / "out", manifest, np.asarray(labels.dataobj), labels.affine


@pytest.mark.slow                      # ~10-25 s of volume I/O for the module
def test_freesurfer_subject_anatomy(freesurfer):
    out, manifest, labels, affine = freesurfer
    (entry,) = manifest["subjects"]
    assert entry["id"] == "bert" and entry["label_kind"] == "freesurfer"
    assert entry["orientation_in_file"] == "LIA"
    _, seg = _fs_slices(out)
    fs = _lookup(labels, affine, entry["pixel_to_world"], seg.shape)
    ventricles = np.isin(fs, (4, 43))
    cortex = (fs >= 11101) & (fs <= 12175)
    white = np.isin(fs, (2, 41))
    assert ventricles.sum() > 500 and (seg[ventricles] == 85).mean() > 0.98
    assert cortex.sum() > 20000 and (seg[cortex] == 170).mean() > 0.98
    assert (seg[white] == 255).mean() > 0.98
    # front at the left: frontal gyri (Destrieux 11115/11116 = G_front_middle/sup) left of the
    # cuneus and occipital gyri (11111, 11119, 11120), in both hemispheres (12xxx)
    _, _, col = np.nonzero(np.isin(fs, (11115, 11116, 12115, 12116)))
    _, _, col_back = np.nonzero(np.isin(fs, (11111, 11119, 11120, 12111, 12119, 12120)))
    assert col.mean() < 110 < 150 < col_back.mean()
    # the subject's left hemisphere (11xxx) in the top rows, the right (12xxx) below
    _, row_l, _ = np.nonzero((fs >= 11101) & (fs <= 11175))
    _, row_r, _ = np.nonzero((fs >= 12101) & (fs <= 12175))
    assert row_l.mean() < 128 < row_r.mean()
    # the sulci between the gyri are CSF, as in OASIS's masks
    assert 0.05 < (seg == 85).sum() / (seg > 0).sum() < 0.3


def _fs_slices(out):
    from PIL import Image

    base = out / "keras_png_slices_data"
    img = np.stack([np.asarray(Image.open(base / "keras_png_slices_train" / f"case_bert_slice_{k}.nii.png"))
                    for k in range(12)])
    seg = np.stack([np.asarray(Image.open(base / "keras_png_slices_seg_train" / f"seg_bert_slice_{k}.nii.png"))
                    for k in range(12)])
    return img, seg


@pytest.mark.slow                      # ~10-25 s of volume I/O for the module
def test_freesurfer_subject_loads(freesurfer, tmp_path):
    out, manifest, _, _ = freesurfer
    s = load_split("train", out, cache_dir=tmp_path, verbose=False)
    assert len(s) == 12 and s.size == (256, 256) and set(np.unique(s.masks)) == {0, 1, 2, 3}
    # tissue contrast of a T1: CSF darker than grey matter, darker than white matter
    med = [np.median(s.images[s.masks == c]) for c in (1, 2, 3)]
    assert med[0] < med[1] < med[2]

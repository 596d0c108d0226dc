"""Find the T1 volumes in a folder, pair each with its label volume, name the subjects.

**The pairing rule** (also in ``docs/DATA.md``), applied folder by folder under ``SRC``:

1. A volume file is a *label volume* when its name (without ``.nii.gz`` etc.) ends in
   ``aseg`` or ``seg`` or ``labels`` or ``tissue`` after a separator or at the start:
   ``aseg``, ``aparc+aseg``, ``aparc.a2009s+aseg``, ``T1_fast_seg``, ``*_fseg`` (OASIS-1
   discs), ``*_pveseg``, ``sub-01_dseg``. Every other volume is a T1 *image*.
2. **FreeSurfer folders** (holding ``norm.mgz`` or an ``aseg``-type ``.mgz``, e.g. a
   subject's ``mri/``): the image is the first of ``norm``, ``brain``, ``T1``, ``orig``
   present, the labels the first of ``aparc.a2009s+aseg``, ``aparc+aseg``,
   ``aparc.DKTatlas+aseg``, ``aseg``; the other volumes there are ignored (listed in the
   manifest). The subject is named after the folder above ``mri/``.
3. Elsewhere a label volume belongs to the image whose name it extends
   (``X.nii.gz`` + ``X_seg.nii.gz``); a label volume that extends no image's name belongs to
   the folder's only image. Several candidates: the first in the order of rule 2, then the
   shortest name. A label volume left with no image is an error.
4. Subject ids come from the image names with the part common to all subjects removed
   (``OAS1_0001_MR1_mpr_..._gfc`` -> ``0001``), characters other than letters, digits and
   ``-`` replaced by ``-``, and made unique.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from .volumes import is_volume_file, volume_stem

__all__ = ["Subject", "find_subjects", "is_label_name"]

LABEL_RE = re.compile(r"(^|[._+-])(aseg|[a-z]*seg|labels?|tissues?)$", re.I)
FS_IMAGES = ("norm", "brain", "T1", "orig")
FS_LABELS = ("aparc.a2009s+aseg", "aparc+aseg", "aparc.DKTatlas+aseg", "aseg")


@dataclass
class Subject:
    """One T1 image, its label volume (or None) and the files ignored beside it."""

    id: str
    image: Path
    labels: Path | None = None
    ignored: list[Path] = field(default_factory=list)


def is_label_name(path) -> bool:
    """True when the file name marks a label volume (rule 1 above).

    Args:
        path: a volume file path.
    """
    return bool(LABEL_RE.search(volume_stem(path)))


def _rank(path: Path) -> tuple:
    stem = volume_stem(path)
    order = FS_LABELS.index(stem) if stem in FS_LABELS else len(FS_LABELS)
    return order, len(path.name), path.name


def _volumes_by_folder(src: Path) -> dict[Path, list[Path]]:
    folders: dict[Path, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        vols = sorted(Path(dirpath) / f for f in filenames
                      if not f.startswith(".") and is_volume_file(f))
        if vols:
            folders[Path(dirpath)] = vols
    return folders


def _freesurfer_folder(folder: Path, vols: list[Path]) -> Subject | None:
    stems = {volume_stem(v): v for v in vols if v.name.lower().endswith((".mgz", ".mgh"))}
    if "norm" not in stems and not any(s in stems for s in FS_LABELS):
        return None
    image = next((stems[s] for s in FS_IMAGES if s in stems), None)
    if image is None:
        raise DataError(f"FreeSurfer folder {folder} has label volumes but none of "
                        f"{[s + '.mgz' for s in FS_IMAGES]}: copy norm.mgz (or brain.mgz) there.")
    labels = next((stems[s] for s in FS_LABELS if s in stems), None)
    name = folder.parent.name if folder.name == "mri" else folder.name
    return Subject(id=name, image=image, labels=labels,
                   ignored=[v for v in vols if v not in (image, labels)])


def _plain_folder(folder: Path, vols: list[Path]) -> list[Subject]:
    images = [v for v in vols if not is_label_name(v)]
    labels = [v for v in vols if is_label_name(v)]
    owner: dict[Path, list[Path]] = {im: [] for im in images}
    for lab in labels:
        ls = volume_stem(lab)
        match = [im for im in images if ls.startswith(volume_stem(im))
                 and len(ls) > len(volume_stem(im)) and ls[len(volume_stem(im))] in "._+-"]
        if match:
            owner[max(match, key=lambda im: len(volume_stem(im)))].append(lab)
        elif len(images) == 1:
            owner[images[0]].append(lab)
        else:
            raise DataError(
                f"Label volume {lab} belongs to no image: its name does not extend any image name "
                f"in {folder} ({', '.join(p.name for p in images) or 'none'}). Name it "
                "<image name>_seg.nii.gz (or similar), or move it away.")
    out = []
    for im in images:
        cands = sorted(owner[im], key=_rank)
        out.append(Subject(id=volume_stem(im), image=im, labels=cands[0] if cands else None,
                           ignored=cands[1:]))
    return out


def _clean_ids(raw: list[str]) -> list[str]:
    """Strip the part all ids share (at separators), sanitise, make unique."""
    ids = list(raw)
    if len(ids) > 1:
        pre = os.path.commonprefix(ids)
        cut = max(pre.rfind(c) for c in "_-.") + 1 if pre else 0
        suf = os.path.commonprefix([s[::-1] for s in ids])[::-1]
        cut_end = min((suf.find(c) for c in "_-." if c in suf), default=-1)
        trimmed = [s[cut:len(s) - (len(suf) - cut_end) if cut_end >= 0 else len(s)] for s in ids]
        if all(trimmed) and len(set(trimmed)) == len(trimmed):
            ids = trimmed
    ids = [re.sub(r"[^A-Za-z0-9-]+", "-", s).strip("-") or "subject" for s in ids]
    seen: dict[str, int] = {}
    out = []
    for s in ids:
        seen[s] = seen.get(s, 0) + 1
        out.append(s if seen[s] == 1 else f"{s}-{seen[s]}")
    return out


def find_subjects(src) -> list[Subject]:
    """All subjects under ``src`` (searched recursively), paired by the rule above.

    Args:
        src: folder of T1 volumes (and optional label volumes).

    Raises:
        DataError: ``src`` is missing or holds no volume, or a label volume has no image.
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"Source folder {src} does not exist. Give the folder that holds your T1 "
                        "volumes (.nii, .nii.gz, .img/.hdr, .mgz).")
    subjects: list[Subject] = []
    for folder, vols in _volumes_by_folder(src).items():
        fs = _freesurfer_folder(folder, vols)
        subjects += [fs] if fs else _plain_folder(folder, vols)
    if not subjects:
        raise DataError(f"{src} holds no T1 volume (.nii, .nii.gz, .img/.hdr, .mgz, .mgh), also "
                        "not in its sub-folders. Put your volumes there.")
    for s, new in zip(subjects, _clean_ids([s.id for s in subjects]), strict=True):
        s.id = new
    return sorted(subjects, key=lambda s: s.id)

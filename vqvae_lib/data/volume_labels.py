"""Label volumes -> the course's four tissue classes (background, CSF, grey, white matter).

The course masks hold 0/85/170/255 = background/CSF/grey matter/white matter (labels 0..3).
Segmentations of a T1 volume come in three kinds, told apart by their values (``"auto"``):

* **Tissue maps** (values within 0..3): FSL FAST's ``*_seg`` / ``*_pveseg`` with ``-t 1``
  (Zhang et al., 2001: 1 CSF, 2 grey, 3 white matter), the OASIS-1 discs' ``*_fseg`` files,
  or any map already in the course's classes. Used as they are.
* **FreeSurfer label maps** (``aseg``, ``aparc+aseg``, ``aparc.a2009s+aseg``,
  ``aparc.DKTatlas+aseg``; Fischl et al., 2002): each structure of FreeSurfer's colour table
  goes to one class by :data:`FREESURFER_TISSUE` (cortical parcels of Desikan, 1000-1035 /
  2000-2035, Desikan et al. 2006, and of Destrieux, 11100-11175 / 12100-12175, Destrieux et
  al. 2010, are grey matter). The table is printed in ``docs/DATA.md``.
* Anything else raises :class:`~vqvae_lib.errors.DataError` naming the file and the values.
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

__all__ = ["BACKGROUND", "CSF", "GREY", "WHITE", "FREESURFER_TISSUE", "freesurfer_tissue",
           "label_kind", "labels_to_tissue", "add_sulcal_csf", "tissue_table_rows"]

BACKGROUND, CSF, GREY, WHITE = 0, 1, 2, 3

# FreeSurfer colour table (FreeSurferColorLUT.txt) structure -> tissue class, by name.
_FS_GROUPS: dict[int, tuple[str, list[int]]] = {
    CSF: ("lateral / inferior lateral / 3rd / 4th / 5th ventricles, CSF, choroid plexus",
          [4, 43, 5, 44, 14, 15, 72, 24, 31, 63]),
    GREY: ("cerebral cortex (aseg), cerebellar cortex, thalamus, caudate, putamen, pallidum, "
           "hippocampus, amygdala, accumbens, substantia nigra, insula/operculum (old aseg), "
           "vessel, non-WM hypointensities",
           [3, 42, 6, 8, 45, 47, 9, 10, 48, 49, 11, 50, 12, 51, 13, 52, 17, 53, 18, 54,
            26, 58, 27, 59, 19, 55, 20, 56, 30, 62, 80, 81, 82]),
    WHITE: ("cerebral and cerebellar white matter, brain stem, ventral diencephalon, corpus "
            "callosum (251-255), optic chiasm, WM hypointensities, lesions",
            [2, 41, 7, 46, 16, 28, 60, 251, 252, 253, 254, 255, 85, 77, 78, 79, 25, 57]),
}
#: Cortical parcel ranges (inclusive) that are grey matter: Desikan(-Killiany, DKT) in
#: aparc+aseg, the older a2005s, and Destrieux in aparc.a2009s+aseg.
CORTICAL_RANGES = ((1000, 1035), (2000, 2035), (1100, 1181), (2100, 2181),
                   (11100, 11175), (12100, 12175))

FREESURFER_TISSUE: dict[int, int] = {0: BACKGROUND}
for _cls, (_, _ids) in _FS_GROUPS.items():
    FREESURFER_TISSUE.update({i: _cls for i in _ids})


def freesurfer_tissue(value: int) -> int | None:
    """Tissue class (0..3) of one FreeSurfer label, or None if the table does not know it.

    Args:
        value: a FreeSurfer label (``aseg`` structure or cortical parcel number).
    """
    value = int(value)
    if value in FREESURFER_TISSUE:
        return FREESURFER_TISSUE[value]
    if any(lo <= value <= hi for lo, hi in CORTICAL_RANGES):
        return GREY
    return None


def label_kind(values) -> str:
    """``"tissue"`` when every value is within 0..3, else ``"freesurfer"``.

    Args:
        values: the distinct label values of a volume.
    """
    return "tissue" if set(int(v) for v in values) <= {0, 1, 2, 3} else "freesurfer"


def labels_to_tissue(labels: np.ndarray, path, table: str = "auto") -> tuple[np.ndarray, str]:
    """Map a label volume to tissue classes 0..3 (uint8); returns ``(tissue, kind used)``.

    Args:
        labels: integer (or integral float) label volume, any shape.
        path: the file it came from (named in errors).
        table: ``"auto"`` (decide by the values), ``"tissue"`` (0..3 as is) or
            ``"freesurfer"`` (:data:`FREESURFER_TISSUE` and the cortical ranges).

    Raises:
        DataError: non-integral values, or values the chosen table does not know.
    """
    if table not in ("auto", "tissue", "freesurfer"):
        raise ValueError(f"table must be 'auto', 'tissue' or 'freesurfer', got {table!r}")
    if np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise DataError(f"Label volume {path} holds non-integer values (a probability map such "
                            "as FAST's *_pve_1?). Give a hard segmentation instead: FAST's *_seg "
                            "or *_pveseg, or FreeSurfer's aseg / aparc+aseg.")
        labels = np.round(labels).astype(np.int64)
    values, inverse = np.unique(labels, return_inverse=True)
    kind = label_kind(values) if table == "auto" else table
    if kind == "tissue":
        lut = [int(v) if 0 <= v <= 3 else None for v in values]
    else:
        lut = [freesurfer_tissue(v) for v in values]
    unknown = [int(v) for v, t in zip(values, lut, strict=True) if t is None]
    if unknown:
        hint = ("a FreeSurfer label map (aseg, aparc+aseg, aparc.a2009s+aseg)" if kind == "freesurfer"
                else "a tissue map with values 0..3 (0 background, 1 CSF, 2 grey, 3 white matter)")
        raise DataError(f"Label volume {path} has values {unknown[:8]}"
                        f"{' ...' if len(unknown) > 8 else ''} that {kind} labels do not define. "
                        f"Expected {hint}. Convert it to one of those (see docs/DATA.md, 'Label -> "
                        "tissue'), or move it away to convert the image without a mask.")
    tissue = np.asarray(lut, dtype=np.uint8)[inverse.reshape(labels.shape)]
    return tissue, kind


def add_sulcal_csf(tissue: np.ndarray, radius: int = 3) -> np.ndarray:
    """Label the sulci as CSF: background voxels inside the brain's closed hull become CSF.

    FreeSurfer's label maps name the ventricles but leave the CSF between the gyri unlabelled
    (0), whereas FAST-style masks such as OASIS's call it CSF. A morphological closing with a
    ball of ``radius`` voxels (holes filled) bridges the sulci; what it adds is sulcal CSF.

    Args:
        tissue: (X, Y, Z) uint8 tissue classes 0..3.
        radius: closing radius in voxels (3 ~ 3 mm at 1 mm voxels).
    """
    from scipy import ndimage as ndi

    brain = tissue > 0
    box = ndi.find_objects(brain.astype(np.uint8))[0]
    box = tuple(slice(max(b.start - radius - 1, 0), b.stop + radius + 1) for b in box)
    r = np.arange(-radius, radius + 1)
    ball = (r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2) <= radius ** 2
    hull = ndi.binary_fill_holes(ndi.binary_closing(brain[box], ball))
    out = tissue.copy()
    out[box][hull & ~brain[box]] = CSF
    return out


def tissue_table_rows() -> list[tuple[str, str, str]]:
    """(class, FreeSurfer labels, what they are) rows: the table written in docs/DATA.md."""
    names = {CSF: "CSF (85)", GREY: "grey matter (170)", WHITE: "white matter (255)"}
    rows = [("background (0)", "0", "unknown / outside the brain")]
    for cls, (what, ids) in _FS_GROUPS.items():
        extra = ", 1000-1035, 2000-2035, 1100-1181, 2100-2181, 11100-11175, 12100-12175" \
            if cls == GREY else ""
        rows.append((names[cls], ", ".join(map(str, sorted(ids))) + extra,
                     what + (", cortical parcels (Desikan, DKT, a2005s, Destrieux)" if extra else "")))
    return rows

"""Stage 1, notebook 01: the slices. Finding, checking, decoding and caching OASIS-layout PNGs
(``files``, ``slices``), the synthetic demo subjects (``demo``) and the exploration figures
(``figures``, imported on its own: ``from vqvae_lib.data import figures``)."""

from .dataset import (
    SliceSet,
    describe_source,
    folder_tree,
    load_split,
    load_splits,
    resolve_data_dir,
    subject_overlap,
)
from .files import DataWarning, list_split, read_image, read_mask, split_subjects

__all__ = ["DataWarning", "SliceSet", "describe_source", "folder_tree", "list_split", "load_split",
           "load_splits", "read_image", "read_mask", "resolve_data_dir", "split_subjects",
           "subject_overlap"]

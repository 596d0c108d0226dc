"""Notebook 06, second half: how real are generated slices? Two-sample tests, precision and
recall, tissue composition, memorisation (whole slices and 16x16 patches), each beside its floor.

``metrics`` (the measures themselves, on tensors), ``segmenter`` (a small tissue segmenter for
the composition), ``scoring`` (files, splits and the segmenter glued to the metrics),
``figures`` (imported on its own: ``from vqvae_lib.realism import figures``).
"""

from .metrics import (
                      HEAD_INTENSITY,
                      one_nn_accuracy,
                      patch_memorisation,
                      precision_recall,
                      realism_metrics,
)
from .scoring import (
                      TARGETS,
                      RealSlices,
                      load_real,
                      novelty,
                      read_folder,
                      realism_scores,
                      realism_verdict,
                      score_table,
                      write_generation_json,
)

__all__ = ["HEAD_INTENSITY", "TARGETS", "RealSlices", "load_real", "novelty", "one_nn_accuracy",
           "patch_memorisation", "precision_recall", "read_folder", "realism_metrics",
           "realism_scores", "score_table", "realism_verdict", "write_generation_json"]

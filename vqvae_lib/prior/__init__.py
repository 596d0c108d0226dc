"""Stage 6, notebook 06: a prior over code grids that generates new slices.

``model`` (gated PixelCNN), ``transformer`` (causal transformer), ``hierarchy`` (a top layout
grid, then the codes given it), ``masked`` (MaskGIT-style parallel decoding), ``clustered`` (a
PixelCNN over groups of near-synonym codes), ``words`` (a transformer over k-means patch words),
``render`` (how a drawn word becomes a patch of codes), ``build`` (which prior a config asks for),
``codes`` (encoded splits, cached), ``fit`` (training), ``store`` (loading), ``reuse`` (train or
reload), ``sample`` (generate, write PNGs, novelty), ``head_check`` (redraw broken head
outlines), ``generation`` (sample quality metrics), ``segmenter`` (tissue fractions),
``scoring`` (metrics against the real data), ``cli``. Figures
and widgets are imported on their own: ``from vqvae_lib.prior import figures``.
"""

from .build import PRIOR_KINDS, build_prior, rebuild_prior
from .clustered import ClusteredCodePrior
from .codes import all_codes, slice_bins, split_codes
from .fit import PriorRun, baseline_bits, evaluate_bits, train_prior
from .generation import generation_scores, one_nn_accuracy, precision_recall
from .hierarchy import HierarchicalPrior, decode_layout
from .masked import MaskedCodePrior
from .model import GatedPixelCNN
from .reuse import train_or_load_prior
from .sample import default_labels, generate, novelty, write_samples
from .scoring import generator_table, load_real, score_images, write_generation_json
from .store import find_vqvae_checkpoint, load_prior
from .transformer import CodeTransformer
from .words import PatchWordPrior

__all__ = ["PRIOR_KINDS", "ClusteredCodePrior", "CodeTransformer", "GatedPixelCNN",
           "HierarchicalPrior", "MaskedCodePrior", "PatchWordPrior", "PriorRun", "all_codes", "baseline_bits",
           "build_prior", "decode_layout", "default_labels", "evaluate_bits",
           "find_vqvae_checkpoint", "generate", "generation_scores", "generator_table", "load_prior",
           "load_real", "novelty", "one_nn_accuracy",
           "precision_recall", "rebuild_prior", "score_images", "slice_bins", "split_codes",
           "train_or_load_prior", "train_prior", "write_generation_json", "write_samples"]

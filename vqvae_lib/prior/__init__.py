"""Stage 6, notebook 06: an autoregressive prior over the VQ-VAE's code grids, sampled to
generate new slices (van den Oord et al. 2017, section 3.2).

Read in this order: ``draw`` (what every prior shares: the sampling loop, bits per cell),
``pixelcnn`` (the gated PixelCNN, the default), ``transformer`` (a causal transformer over the
raster sequence), ``codes`` (the training data: every slice encoded once), ``fit`` (training and
the test NLL), ``store`` (building, saving, loading; the VQ-VAE a prior belongs to), ``sample``
(generate, write PNGs). ``figures`` (with the live sampler) is imported on its own:
``from vqvae_lib.prior import figures``. How real the samples are: :mod:`vqvae_lib.realism`.
"""

from .codes import all_codes, slice_bins, split_codes
from .draw import CodePrior, draw_codes
from .fit import PriorRun, baseline_bits, evaluate_bits, train_prior
from .pixelcnn import GatedPixelCNN
from .sample import default_labels, generate, write_samples
from .store import PRIOR_KINDS, build_prior, load_prior, rebuild_prior, vqvae_for_prior
from .transformer import CodeTransformer

__all__ = ["PRIOR_KINDS", "CodePrior", "CodeTransformer", "GatedPixelCNN", "PriorRun",
           "all_codes", "baseline_bits", "build_prior", "default_labels", "draw_codes",
           "evaluate_bits", "generate", "load_prior", "rebuild_prior", "slice_bins",
           "split_codes", "train_prior", "vqvae_for_prior", "write_samples"]

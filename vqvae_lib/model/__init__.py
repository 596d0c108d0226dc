"""Stage 2, notebook 02: the model. Encoder, quantizers and decoder (``vqvae``, ``quantizers``),
batched encode/decode (``inference``) and the figures of notebook 02 (``figures``, ``toy``)."""

from .factory import build_quantizer
from .fsq import FSQ
from .inference import decode, encode, reconstruct
from .quantizers import QuantizerOutput, VectorQuantizer, VectorQuantizerEMA
from .rvq import ResidualVQ
from .vqvae import VQVAE, VQVAEOutput, build_model, receptive_field

__all__ = ["VQVAE", "VQVAEOutput", "QuantizerOutput", "VectorQuantizer", "VectorQuantizerEMA",
           "FSQ", "ResidualVQ",
           "build_model", "build_quantizer", "decode", "encode", "receptive_field",
           "reconstruct"]

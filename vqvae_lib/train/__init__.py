"""Stage 3, notebook 03: training the VQ-VAE on a CPU, one GPU or many (``torchrun``).

The loop is :func:`train_step` + :func:`fit` in ``loop.py``; ``train(cfg, ...)`` builds the
model and the data and runs it. Figures: ``from vqvae_lib.train import figures``.
"""

from .batches import TrainData, augment_batch, decode_pngs, load_train_data
from .budget import describe, lr_factor
from .history import History, load_history
from .loop import TrainResult, fit, train_step
from .run import make_trainer, train
from .trainer import Trainer
from .validate import validate

__all__ = ["History", "TrainData", "TrainResult", "Trainer", "augment_batch", "decode_pngs",
           "describe", "fit", "load_history", "load_train_data", "lr_factor", "make_trainer",
           "train", "train_step", "validate"]

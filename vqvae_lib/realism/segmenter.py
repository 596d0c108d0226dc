"""A small tissue segmenter: slice -> background / CSF / grey / white matter per pixel.

It exists to *measure* generated slices, which have no masks: the tissue composition of a sample
(how much white matter, how much CSF) is compared with that of real slices. Four dilated 3x3
convolutions (receptive field 15 px, about 2,600 weights), trained for a few hundred steps on
the training split's images and masks. Its pixel accuracy on the **test** masks is reported
beside every number it produces, so a reader knows how far to trust them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..common import atomic_write, progress
from ..errors import CheckpointError

__all__ = ["TissueSegmenter", "train_segmenter", "segmenter_accuracy", "load_or_train_segmenter"]


class TissueSegmenter(nn.Module):
    """(N, 1, H, W) images in [0, 1] -> (N, 4, H, W) tissue logits.

    Args:
        width: channels of the hidden layers.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=4, dilation=4), nn.ReLU(),
            nn.Conv2d(width, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def fractions(self, images, batch_size: int = 64) -> np.ndarray:
        """Per-slice tissue fractions (N, 4) (background, CSF, grey, white; rows sum to 1).

        Args:
            images: (N, 1, H, W) float in [0, 1] (or uint8).
            batch_size: slices per forward pass.
        """
        self.eval()
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.as_tensor(images[i:i + batch_size])
            x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
            labels = self(x).argmax(1)                                            # (B, H, W)
            out.append(F.one_hot(labels, 4).float().mean((1, 2)))                 # (B, 4)
        return torch.cat(out).numpy()


def train_segmenter(images: torch.Tensor, masks: torch.Tensor, steps: int = 300,
                    batch_size: int = 16, seed: int = 0, verbose: bool = False) -> TissueSegmenter:
    """Fit a :class:`TissueSegmenter` with Adam and class-weighted cross-entropy.

    Args:
        images: (N, 1, H, W) float in [0, 1].
        masks: (N, H, W) long labels 0..3.
        steps: optimiser steps.
        batch_size: slices per step.
        seed: seeds the initialisation and the batches.
        verbose: show a progress bar.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TissueSegmenter()
    counts = torch.bincount(masks.reshape(-1), minlength=4).float() + 1
    weight = (counts.sum() / counts).sqrt()   # CSF is rare: weight classes by 1/sqrt(frequency)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in progress(range(steps), desc="segmenter", leave=False, disable=not verbose):
        idx = torch.randint(0, len(images), (batch_size,), generator=g)
        loss = F.cross_entropy(model(images[idx]), masks[idx], weight=weight / weight.mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def segmenter_accuracy(model: TissueSegmenter, images: torch.Tensor, masks: torch.Tensor) -> dict:
    """Pixel accuracy and per-tissue recall on labelled slices (use the test split).

    Args:
        model: a trained segmenter.
        images: (N, 1, H, W) float in [0, 1].
        masks: (N, H, W) long labels.
    """
    pred = torch.cat([model(images[i:i + 64]).argmax(1) for i in range(0, len(images), 64)])
    recall = [float((pred[masks == t] == t).float().mean()) if (masks == t).any() else float("nan")
              for t in range(4)]
    return {"pixel_accuracy": float((pred == masks).float().mean()), "recall_per_tissue": recall}


def load_or_train_segmenter(path, train_images, train_masks, test_images, test_masks,
                            key: str, steps: int = 300, verbose: bool = True):
    """The segmenter cached at ``path`` if its ``key`` matches, else a new one (saved atomically).

    Args:
        path: cache file (``runs/<preset>/prior/segmenter.pt``), or None for no cache.
        train_images, train_masks: training data ((N, 1, H, W) float, (N, H, W) long).
        test_images, test_masks: where the reported accuracy is measured.
        key: identifies the data (e.g. data folder and image size).
        steps: optimiser steps for a new one.
        verbose: print the accuracy.

    Returns:
        ``(segmenter, accuracy dict)``.
    """
    path = Path(path) if path else None
    if path is not None and path.is_file():
        try:
            blob = torch.load(path, weights_only=True)
        except Exception as e:
            raise CheckpointError(f"The segmenter cache {path} is damaged ({type(e).__name__}); "
                                  f"delete it and it is trained again.") from e
        if blob.get("key") == key and blob.get("steps") == steps:
            model = TissueSegmenter()
            model.load_state_dict(blob["model"])
            return model.eval(), blob["accuracy"]
    model = train_segmenter(train_images, train_masks, steps, verbose=verbose)
    acc = segmenter_accuracy(model, test_images, test_masks)
    if path is not None:
        buf = io.BytesIO()
        torch.save({"key": key, "steps": steps, "model": model.state_dict(), "accuracy": acc}, buf)
        atomic_write(path, lambda f: f.write(buf.getvalue()))
    if verbose:
        print(f"tissue segmenter: pixel accuracy {acc['pixel_accuracy']:.3f} on the test masks "
              f"(recall per tissue {', '.join(f'{r:.2f}' for r in acc['recall_per_tissue'])})")
    return model, acc

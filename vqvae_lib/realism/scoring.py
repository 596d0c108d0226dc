"""Score any set of slices against the real data: the glue between files, splits, the tissue
segmenter and :func:`vqvae_lib.realism.metrics.realism_metrics`.

Used by notebook 06 (which writes ``runs/<preset>/prior/generation.json``) and by
``python -m vqvae_lib.realism DIR`` (any folder of PNG slices).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..common import write_json
from ..data.dataset import load_split, resolve_data_dir
from ..data.files import read_image
from ..errors import DataError
from ..model.inference import encode
from .metrics import nearest_neighbours, realism_metrics
from .segmenter import load_or_train_segmenter

__all__ = ["RealSlices", "load_real", "read_folder", "realism_scores", "write_generation_json",
           "novelty", "TARGETS", "score_table", "realism_verdict"]

TARGETS = {"one_nn_shape": 0.70, "one_nn_intensity": 0.75, "tissue_w1_over_floor": 2.5,
           "near_copy_patches_over_test": 2.0}
"""The course's targets for a 2-core CPU run at temperature 1: a nearest-neighbour rule should
tell samples from real slices in at most 70 % (shape) and 75 % (intensity) of cases; each tissue's
W1 at most 2.5 times its floor; near-copy patches at most twice as common as among real slices."""

_LABELS = {"one_nn_shape": ("1-NN accuracy, shape (32x32)", "0.5"),
           "one_nn_intensity": ("1-NN accuracy, in-head intensities", "0.5"),
           "precision": ("precision (samples inside the real manifold)", "1"),
           "recall": ("recall (real variety covered)", "1")}


class RealSlices:
    """The training slices and the held-out real slices samples are compared with (the test
    split, or ``split``), with masks, at one size, and the fitted segmenter.

    Args:
        data_dir: data folder (default: the usual resolution order).
        size: image side the slices are resized to.
        cache: where the segmenter is cached (e.g. ``runs/<preset>/prior/segmenter.pt``), or None.
        verbose: print the segmenter's accuracy when it is trained.
        segmenter_steps: optimiser steps of the tissue segmenter.
        split: the held-out split (``test`` or ``validate``); its slices, subjects and masks are
            ``test``, ``test_subjects`` and ``test_masks`` below.
    """

    def __init__(self, data_dir=None, size: int = 128, cache=None, verbose: bool = True,
                 segmenter_steps: int = 300, split: str = "test"):
        sets = {"train": load_split("train", data_dir, size=size, masks=True, verbose=False),
                "test": load_split(split, data_dir, size=size, masks=True, verbose=False)}
        for s, d in (("train", sets["train"]), (split, sets["test"])):
            if d.masks is None:
                raise DataError(f"the {s} split of {d.root} has no tissue masks; the generation "
                                f"metrics need them (keras_png_slices_seg_{s}/).")
        self.size = size
        self.train, self.test = sets["train"].tensors(), sets["test"].tensors()
        self.train_subjects, self.test_subjects = sets["train"].subjects, sets["test"].subjects
        self.train_masks = sets["train"].mask_tensors()
        self.test_masks = sets["test"].mask_tensors()
        key = f"{resolve_data_dir(data_dir)[0]}:{size}:{len(self.train)}"
        self.segmenter, self.segmenter_accuracy = load_or_train_segmenter(
            cache, self.train, self.train_masks, self.test, self.test_masks, key,
            steps=segmenter_steps, verbose=verbose)

    def fractions(self, images) -> np.ndarray:
        """Per-slice tissue fractions (N, 4) from the segmenter."""
        return self.segmenter.fractions(images)


def load_real(data_dir=None, size: int = 128, run_dir=None, verbose: bool = True,
              split: str = "test") -> RealSlices:
    """:class:`RealSlices`, the segmenter cached under ``<run_dir>/prior/`` when given.

    Args:
        data_dir: data folder.
        size: image side.
        run_dir: run folder for the segmenter cache (None: fitted in memory, not saved).
        verbose: print the segmenter's accuracy.
        split: the held-out split the samples are compared with (``test`` or ``validate``).
    """
    cache = Path(run_dir) / "prior" / "segmenter.pt" if run_dir else None
    return RealSlices(data_dir, size, cache, verbose, split=split)


def read_folder(folder, size: int) -> torch.Tensor:
    """Every ``*.png`` of ``folder`` (sorted) as (N, 1, size, size) float in [0, 1].

    Args:
        folder: a folder of grey (or RGB, converted) PNG slices.
        size: side to resize to.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder. Pass the folder that "
                        f"`python -m vqvae_lib.prior sample --out-dir` wrote.")
    paths = sorted(folder.glob("*.png"))
    if not paths:
        raise DataError(f"{folder} holds no .png files to score. Write samples there first "
                        f"(`python -m vqvae_lib.prior sample --out-dir {folder}`).")
    arr = np.stack([read_image(p, size) for p in paths])
    return torch.from_numpy(arr).float().div(255)[:, None]


def realism_scores(images, real: RealSlices, n: int = 64, groups=None) -> dict:
    """Realism metrics of ``images`` against ``real``, with floors and segmenter accuracy.
    The 1-NN tests leave out whole subjects (see :mod:`vqvae_lib.prior.generation`).

    Args:
        images: (N, 1, H, W) slices in [0, 1] at ``real.size``.
        real: the real slices and segmenter.
        n: slices per side.
        groups: (N,) subject of each image when they are not independent (reconstructions of
            real slices); None for generated slices (each is a head of its own).
    """
    if images.shape[-1] != real.size:
        raise ValueError(f"images are {images.shape[-1]} px, the real slices {real.size} px")
    if len(images) < n:
        n = len(images)
    scores = realism_metrics(images, real.test, real.train, real.fractions, n=n,
                               test_subjects=real.test_subjects,
                               train_subjects=real.train_subjects, generated_groups=groups)
    scores["segmenter_test_accuracy"] = real.segmenter_accuracy
    return scores


def write_generation_json(path, scores: dict, **context) -> Path:
    """Write scores (plus context such as prior kind and temperature) atomically as JSON.

    Args:
        path: usually ``runs/<preset>/prior/generation.json``.
        scores: from :func:`realism_scores`.
        **context: extra keys stored beside the scores.
    """
    return write_json(path, {**context, **scores})


def novelty(vqvae, images: torch.Tensor, codes: torch.Tensor, train_images: torch.Tensor,
            device="cpu") -> dict[str, torch.Tensor]:
    """How far each image (N, 1, H, W) with codes (N, h, w) is from the training split.

    ``index``/``mse``: its nearest training slice by pixel MSE; ``shared``: the fraction of
    latent cells whose code equals that neighbour's. Run it on real test slices too: they are new
    by construction, so their numbers say what "not a copy" looks like (background codes alone
    make any two slices share a good part of their grid).

    Args:
        vqvae: the VQ-VAE.
        images: (N, 1, H, W) slices.
        codes: (N, h, w) their codes.
        train_images: (M, 1, H, W) training slices.
        device: where to encode.
    """
    index, mse = nearest_neighbours(images, train_images)
    nn_codes = encode(vqvae, train_images[index], device=device)
    shared = (nn_codes == codes.cpu()).float().flatten(1).mean(1)
    return {"index": index, "mse": mse, "shared": shared}


def score_table(scores: dict, ceiling: dict | None = None) -> str:
    """The realism metrics of one run as a Markdown table: generated, floor (real vs real), the
    decoder's ceiling (reconstructions of real slices) and the ideal value.

    Args:
        scores: from :func:`realism_scores`.
        ceiling: the same metrics for reconstructions (``{"one_nn_shape": x, ...}``), or None.
    """
    rows = ["| metric | generated | floor: real vs real | decoder ceiling | ideal |",
            "| --- | --- | --- | --- | --- |"]
    for key, (label, ideal) in _LABELS.items():
        c = f"{ceiling[key]:.2f}" if ceiling and key in ceiling else ""
        rows.append(f"| {label} | {scores[key]['generated']:.2f} | {scores[key]['floor']:.2f} | "
                    f"{c} | {ideal} |")
    for tissue, v in scores.get("tissue_w1", {}).items():
        rows.append(f"| W1 of the {tissue} fraction | {v['generated']:.4f} | {v['floor']:.4f} | | 0 |")
    p = scores.get("patch_memorisation") or {}
    if p.get("share_near_copies") is not None:
        rows.append(f"| near-copy 16x16 patches | {p['share_near_copies']:.1%} | "
                    f"{p['test_share_near_copies']:.1%} (test slices) | | as real |")
    return "\n".join(rows)


def realism_verdict(scores: dict) -> list[str]:
    """One sentence per target of :data:`TARGETS`, saying what this run measured against it.

    Args:
        scores: from :func:`realism_scores`.
    """
    out = []
    for key, what in (("one_nn_shape", "shape"), ("one_nn_intensity", "intensity")):
        g, f = scores[key]["generated"], scores[key]["floor"]
        out.append(f"1-NN on {what}: {g:.3f} (real vs real {f:.3f}; target <= {TARGETS[key]:.2f}: "
                   f"{'met' if g <= TARGETS[key] else 'NOT met'}). A nearest-neighbour rule tells "
                   f"samples from real slices in {g:.0%} of cases.")
    for tissue, v in scores.get("tissue_w1", {}).items():
        ratio = v["generated"] / max(v["floor"], 1e-12)
        out.append(f"{tissue} fraction: W1 {ratio:.1f}x its floor (target <= "
                   f"{TARGETS['tissue_w1_over_floor']:g}x: "
                   f"{'met' if ratio <= TARGETS['tissue_w1_over_floor'] else 'NOT met'}).")
    p = scores.get("patch_memorisation") or {}
    if p.get("share_near_copies") is not None:
        ok = p["share_near_copies"] <= TARGETS["near_copy_patches_over_test"] * max(
            p["test_share_near_copies"], 0.01)
        out.append(f"near-copy patches: {p['share_near_copies']:.1%} of the samples' head patches "
                   f"vs {p['test_share_near_copies']:.1%} of real test slices' "
                   f"({'no more copying than real slices show' if ok else 'MORE copying than real slices show'}).")
    return out

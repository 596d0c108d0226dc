"""How real are generated slices? Two-sample tests, precision/recall, tissue composition, copies.

A low NLL says the prior predicts real code grids well; it does not say that its *samples* look
real (a model can spend its bits on texture and still draw no midline). So we compare a set of
generated slices with a set of real test slices directly, in feature spaces that a reader can
interpret, and put every number beside its **floor**: the same number for real test slices
against real training slices (other subjects), i.e. what "indistinguishable" scores here.

* **1-NN two-sample test** (Lopez-Paz & Oquab 2017, "Revisiting classifier two-sample tests"):
  pool the two sets, classify each slice by the set of its nearest *other* slice (leave one
  out). Accuracy 0.5: the sets are mixed; 1.0: every slice's neighbour is of its own kind.
  The test assumes independent slices; real ones are not: the 64 test slices come from only a
  few subjects, and neighbouring slices of one head are near-copies (same size, same contrast),
  so each real slice would find its twin and the real-vs-real floor would sit near 0.85, not 0.5.
  We therefore leave out the whole **subject**, not only the slice: a slice's neighbour must
  come from another head (every generated slice is a head of its own).
  Two feature spaces: the slice shrunk to 32x32 (global shape, :func:`shape_features`) and the
  histogram of intensities inside the head (tissue contrast, :func:`intensity_features`).
* **Precision and recall** (Kynkäänniemi et al. 2019, k = 3): precision = share of generated
  slices inside the real slices' k-NN balls (are samples realistic?), recall = share of real
  slices inside the generated slices' balls (is the variety covered?). Feature space: the first
  32 principal components of the 32x32 slices, fitted on the training split
  (:class:`PCAFeatures`): no ImageNet network knows MRI, and PCA keeps the large-scale shape and
  contrast variations (head size, ventricles, tissue layout) while dropping the pixel noise that
  would make every k-NN ball reflect noise rather than anatomy.
* **Tissue composition**: per slice the fractions of background, CSF, grey and white matter from
  a small segmenter (:mod:`vqvae_lib.prior.segmenter`); Wasserstein-1 per class between the
  generated and the test fractions.
* **Memorisation**, twice: each slice's RMSE to its nearest training slice (a replayed slice),
  and each 16x16 **patch**'s RMSE to its nearest training patch (a collage of training pieces,
  which whole-slice distances cannot see), for samples and for real test slices.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import wasserstein_distance

from ..common import TISSUE_NAMES, evenly_spaced

__all__ = ["shape_features", "intensity_features", "PCAFeatures", "one_nn_accuracy",
           "precision_recall", "nearest_neighbours", "tissue_w1", "head_patches",
           "patch_memorisation", "realism_metrics", "HEAD_INTENSITY", "NEAR_COPY_QUANTILE"]

HEAD_INTENSITY = 0.08
"""Pixels brighter than this (images in [0, 1]) count as inside the head."""

NEAR_COPY_QUANTILE = 0.01
"""A generated patch is a near-copy when it lies closer to a training patch than all but this
share of real test patches do."""


def _float(images) -> torch.Tensor:
    x = torch.as_tensor(images)
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
    return x[:, None] if x.dim() == 3 else x  # (N, 1, H, W)


def shape_features(images, size: int = 32) -> torch.Tensor:
    """Slices shrunk to ``size`` x ``size`` by area averaging, flattened. (N, size * size)

    Args:
        images: (N, 1, H, W) or (N, H, W), float in [0, 1] or uint8.
        size: side of the shrunk slice.
    """
    return F.adaptive_avg_pool2d(_float(images), size).flatten(1)


def intensity_features(images, bins: int = 32, threshold: float = HEAD_INTENSITY) -> torch.Tensor:
    """Histogram of the intensities inside the head, as square roots of frequencies (so that the
    Euclidean distance is the Hellinger distance between histograms). (N, bins)

    Args:
        images: (N, 1, H, W) or (N, H, W), float in [0, 1] or uint8.
        bins: histogram bins over (threshold, 1].
        threshold: pixels at or below it are background.
    """
    x = _float(images).flatten(1)
    out = torch.zeros(len(x), bins)
    for i, row in enumerate(x):
        inside = row[row > threshold]
        if len(inside):
            h = torch.histc(inside, bins=bins, min=threshold, max=1.0)
            out[i] = (h / h.sum()).sqrt()
    return out


class PCAFeatures:
    """Principal components of 32x32 slices, fitted on real (training) slices.

    Args:
        reference: (N, 1, H, W) real slices to fit on.
        n_components: components kept.
    """

    def __init__(self, reference, n_components: int = 32):
        f = shape_features(reference).double()
        self.mean = f.mean(0)
        _, _, v = torch.linalg.svd(f - self.mean, full_matrices=False)
        self.basis = v[:n_components].T  # (P, n_components)

    def __call__(self, images) -> torch.Tensor:
        return ((shape_features(images).double() - self.mean) @ self.basis).float()


def one_nn_accuracy(a: torch.Tensor, b: torch.Tensor, groups_a=None, groups_b=None) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy of telling set ``a`` from set ``b``.

    0.5 (or a little below, by chance) when the sets come from one distribution, 1.0 when each
    point's nearest other point is always from its own set. Lopez-Paz & Oquab 2017.

    Args:
        a: (n, d) features of one set.
        b: (m, d) features of the other.
        groups_a: (n,) group of each point of ``a`` (e.g. subject ids), or None (each point its
            own group). Points of one group are never each other's neighbours: with slices
            this is leave-one-*subject*-out, so a slice cannot be classified by its own head.
        groups_b: the same for ``b``; a group name in both sets is still one group.
    """
    x = torch.cat([a, b]).double()
    label = torch.cat([torch.zeros(len(a)), torch.ones(len(b))])
    d = torch.cdist(x, x)
    d.fill_diagonal_(float("inf"))
    if groups_a is not None or groups_b is not None:
        ga = np.asarray(groups_a if groups_a is not None else [f"a{i}" for i in range(len(a))], str)
        gb = np.asarray(groups_b if groups_b is not None else [f"b{i}" for i in range(len(b))], str)
        g = np.concatenate([ga, gb])
        d[torch.as_tensor(g[:, None] == g[None, :])] = float("inf")
    return float((label[d.argmin(1)] == label).double().mean())


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls.

    Args:
        real: (n, d) features of real slices.
        fake: (m, d) features of generated slices.
        k: the k-th neighbour sets each ball's radius.

    Returns:
        ``(precision, recall)``.
    """
    def radii(x):
        d = torch.cdist(x, x)
        return d.kthvalue(k + 1, dim=1).values  # the 0-th neighbour is the point itself

    def covered(points, centres, r):
        return float((torch.cdist(points, centres) <= r[None]).any(1).double().mean())

    real, fake = real.double(), fake.double()
    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def nearest_neighbours(queries, references, chunk: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query image the closest reference by pixel MSE.

    Args:
        queries: (n, 1, H, W) images.
        references: (N, 1, H, W) images of the same size.
        chunk: references compared at a time.

    Returns:
        ``(indices (n,), mse (n,))``.
    """
    q = _float(queries).flatten(1)  # (n, P)
    best_d = torch.full((len(q),), float("inf"))
    best_i = torch.zeros(len(q), dtype=torch.long)
    for s in range(0, len(references), chunk):
        r = _float(references[s:s + chunk]).flatten(1)  # (c, P)
        d = (q.pow(2).sum(1, keepdim=True) - 2 * q @ r.T + r.pow(2).sum(1)) / q.shape[1]
        d_min, i_min = d.min(1)
        better = d_min < best_d
        best_d, best_i = torch.where(better, d_min, best_d), torch.where(better, i_min + s, best_i)
    return best_i, best_d.clamp_min(0)


def tissue_w1(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Wasserstein-1 distance per tissue between two sets of per-slice fractions (n, 4), (m, 4).

    Args:
        a: fractions of one set (rows sum to 1).
        b: fractions of the other.
    """
    return {name: float(wasserstein_distance(a[:, t], b[:, t])) for t, name in enumerate(TISSUE_NAMES)}


def head_patches(images, size: int = 16, min_head: float = 0.5) -> torch.Tensor:
    """The non-overlapping ``size`` x ``size`` patches of ``images`` that lie mostly inside the
    head (background patches are alike in every slice and say nothing about copying).

    Args:
        images: (N, 1, H, W) or (N, H, W), float in [0, 1] or uint8.
        size: patch side (16 px = one 4x4 block of codes at downsample 4).
        min_head: share of a patch's pixels that must be brighter than ``HEAD_INTENSITY``.

    Returns:
        (P, 1, size, size) patches.
    """
    p = F.unfold(_float(images), size, stride=size)                # (N, size*size, L)
    p = p.transpose(1, 2).reshape(-1, size * size)                  # (N*L, size*size)
    inside = (p > HEAD_INTENSITY).float().mean(1) >= min_head
    return p[inside].reshape(-1, 1, size, size)


def patch_memorisation(generated, test, train, size: int | None = None) -> dict:
    """How close each head patch of the samples lies to its nearest training patch, against the
    same for real test slices. A sampler that pastes training pieces has patches at distance ~0;
    real unseen slices define what "not copied" looks like.

    Args:
        generated: (n, 1, H, W) generated slices.
        test: (m, 1, H, W) real test slices.
        train: (N, 1, H, W) training slices (every patch of every slice is a reference).
        size: patch side in pixels (default: an eighth of the image side, 16 px at 128 px: one
            4x4 block of codes at downsample 4).

    Returns:
        ``{"patch", "generated_median_rmse", "test_median_rmse", "median_ratio",
        "copy_threshold", "share_near_copies", "test_share_near_copies", "distances"}``: the
        share of generated patches nearer a training patch than the ``NEAR_COPY_QUANTILE`` of
        test patches (about that quantile for a sampler that copies nothing).
    """
    size = size or max(4, _float(test).shape[-1] // 8)
    queries, references = head_patches(generated, size), head_patches(train, size)
    real = head_patches(test, size)
    if not (len(queries) and len(references) and len(real)):   # no head anywhere: nothing to say
        return {"patch": size, "share_near_copies": None, "median_ratio": None}
    d_gen = nearest_neighbours(queries, references)[1].sqrt().numpy()
    d_test = nearest_neighbours(real, references)[1].sqrt().numpy()
    threshold = float(np.quantile(d_test, NEAR_COPY_QUANTILE))
    return {"patch": size, "generated_median_rmse": float(np.median(d_gen)),
            "test_median_rmse": float(np.median(d_test)),
            "median_ratio": float(np.median(d_gen) / max(np.median(d_test), 1e-12)),
            "copy_threshold": threshold, "share_near_copies": float((d_gen < threshold).mean()),
            "test_share_near_copies": float((d_test < threshold).mean()),
            "distances": {"generated": np.round(d_gen, 4).tolist(),
                          "test": np.round(d_test, 4).tolist()}}


def realism_metrics(generated, test, train, fractions=None, n: int = 64, test_subjects=None,
                    train_subjects=None, generated_groups=None) -> dict:
    """Every realism metric of this module, each with its floor (test vs train).

    Args:
        generated: (m, 1, H, W) generated slices in [0, 1] (m >= n is best).
        test: real test slices; ``n`` evenly spaced ones are the real side.
        train: real training slices: PCA fit, memorisation references, and ``n`` evenly spaced
            ones stand in for "generated" in the floor.
        fractions: a function images -> (N, 4) tissue fractions (a fitted segmenter), or None.
        n: slices per side.
        test_subjects: (len(test),) subject of each test slice: the 1-NN test leaves out whole
            subjects (see the module docstring). None: every slice its own subject.
        train_subjects: (len(train),) the same for the training slices.
        generated_groups: (m,) groups of the generated slices (None: each its own); e.g. the
            subjects of training slices when "generated" are their reconstructions.

    Returns:
        a JSON-ready dict: ``{metric: {"generated": x, "floor": y}}`` plus details.
    """
    gen = _float(generated)[:n]
    pick_real = evenly_spaced(len(test), n)
    real = _float(test)[torch.as_tensor(pick_real)]
    train = _float(train)
    pick_train = evenly_spaced(len(train), len(real))
    stand_in = train[torch.as_tensor(pick_train)]
    g_real = None if test_subjects is None else ["test:" + str(s) for s in np.asarray(test_subjects)[pick_real]]
    g_stand = (None if train_subjects is None
               else ["train:" + str(s) for s in np.asarray(train_subjects)[pick_train]])
    g_gen = None if generated_groups is None else [str(s) for s in list(generated_groups)[:n]]
    pca = PCAFeatures(train)
    out: dict = {"n_generated": len(gen), "n_real": len(real),
                 "one_nn_protocol": "leave one subject out" if g_real is not None else "leave one out"}
    for name, feat in (("one_nn_shape", shape_features), ("one_nn_intensity", intensity_features)):
        out[name] = {"generated": one_nn_accuracy(feat(gen), feat(real), g_gen, g_real),
                     "floor": one_nn_accuracy(feat(stand_in), feat(real), g_stand, g_real)}
    p, r = precision_recall(pca(real), pca(gen))
    p0, r0 = precision_recall(pca(real), pca(stand_in))
    out["precision"] = {"generated": p, "floor": p0}
    out["recall"] = {"generated": r, "floor": r0}
    if fractions is not None:
        fg, fr, ft = fractions(gen), fractions(real), fractions(stand_in)
        w_gen, w_floor = tissue_w1(fg, fr), tissue_w1(ft, fr)
        out["tissue_w1"] = {k: {"generated": w_gen[k], "floor": w_floor[k]} for k in w_gen}
        out["tissue_mean_fractions"] = {
            "generated": dict(zip(TISSUE_NAMES, fg.mean(0).tolist(), strict=True)),
            "test": dict(zip(TISSUE_NAMES, fr.mean(0).tolist(), strict=True))}
    _, d_gen = nearest_neighbours(gen, train)
    _, d_test = nearest_neighbours(real, train)
    rg, rt = d_gen.sqrt().numpy(), d_test.sqrt().numpy()
    out["memorisation"] = {
        "generated_median_rmse": float(np.median(rg)), "test_median_rmse": float(np.median(rt)),
        "generated_min_rmse": float(rg.min()), "test_min_rmse": float(rt.min()),
        "share_closer_than_any_test": float((rg < rt.min()).mean())}
    out["patch_memorisation"] = patch_memorisation(gen, real, train)
    return out

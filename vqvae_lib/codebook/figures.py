"""Figures for notebook 04: codebook usage, geometry, codes vs tissue, and the three views
(slice, code, code swap) that the widgets in ``codebook_widgets`` redraw interactively.

Every ``*_figure`` function returns a matplotlib ``Figure`` and saves nothing; the notebook
saves it with ``viz.show``. The widget views call the very same functions, so the static
figure in an executed notebook shows exactly what the slider shows at that position.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap, hsv_to_rgb
from matplotlib.figure import Figure

from ..common import TISSUE_COLORS, TISSUE_NAMES
from ..metrics import psnr
from ..viz import show_image
from .analysis import CodebookAnalysis, pairwise_distances, pca_2d
from .appearance import code_patches, swap_effect


def code_colormap(codebook_size: int, seed: int = 0) -> ListedColormap:
    """K distinct-ish colours in a fixed random order, so neighbouring code ids differ."""
    rng = np.random.default_rng(seed)
    hsv = np.stack([rng.permutation(codebook_size) / codebook_size,
                    rng.uniform(0.45, 0.95, codebook_size),
                    rng.uniform(0.65, 1.0, codebook_size)], axis=1)
    return ListedColormap(hsv_to_rgb(hsv), name=f"codes{codebook_size}")


# ---------------------------------------------------------------------------------------------
# Usage, geometry, tissue
# ---------------------------------------------------------------------------------------------
def usage_figure(A: CodebookAnalysis) -> Figure:
    """(a) usage sorted by frequency (log scale); (b) share of cells covered by the top-k codes,
    with the used codes, the perplexity and K marked."""
    u = A.usage
    K = u.codebook_size
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[1.4, 1])
    counts = u.counts[u.order]
    ax1.bar(np.arange(u.used), counts[:u.used], width=1.0, color="#4c72b0", log=True)
    if len(u.dead):
        ax1.axvspan(u.used - 0.5, K - 0.5, color="#d62728", alpha=0.12,
                    label=f"{len(u.dead)} dead code{'s' if len(u.dead) > 1 else ''}")
        ax1.legend(loc="upper right", fontsize=8)
    ax1.set(xlim=(-0.5, K - 0.5), xlabel="code rank (most used first)",
            ylabel="latent cells (log)", title=f"Code usage on {len(A.codes)} slices")
    frac = np.cumsum(counts) / max(counts.sum(), 1)
    ranks = np.arange(1, K + 1)
    ax2.plot(ranks, frac, color="#4c72b0")
    for x, label, color in ((u.perplexity, f"perplexity {u.perplexity:.1f}", "#2ca02c"),
                            (u.used, f"used {u.used}", "#ff7f0e"), (K, f"K = {K}", "#555555")):
        ax2.axvline(x, color=color, ls="--", lw=1, label=label)
    ax2.set(xscale="log", xlim=(1, K * 1.05), ylim=(0, 1.02), xlabel="top-k codes (log)",
            ylabel="share of latent cells", title="Perplexity vs K")
    ax2.legend(loc="lower right", fontsize=8)
    return fig


def geometry_figure(A: CodebookAnalysis) -> Figure:
    """(a) pairwise code distances, used-used vs pairs with a dead code; (b, c) the codebook's
    2-D PCA coloured by usage and by each code's main tissue."""
    u, book = A.usage, A.codebook
    fig = Figure(figsize=(13, 3.9), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    d = pairwise_distances(book)
    iu = np.triu_indices(len(book), 1)
    used = u.counts > 0
    both = used[iu[0]] & used[iu[1]]
    bins = np.linspace(0, d[iu].max() * 1.01 + 1e-9, 50)
    ax1.hist(d[iu][both], bins=bins, color="#4c72b0", alpha=0.8, label="used - used")
    if (~both).any():
        ax1.hist(d[iu][~both], bins=bins, color="#d62728", alpha=0.5, label="with a dead code")
    ax1.set(xlabel="Euclidean distance", ylabel="code pairs", title="Pairwise code distances")
    ax1.legend(fontsize=8)
    xy, explained = pca_2d(book)
    axis_labels = dict(xlabel=f"PC1 ({100 * explained[0]:.0f}% var.)",
                       ylabel=f"PC2 ({100 * explained[1]:.0f}% var.)")
    sc = ax2.scatter(xy[used, 0], xy[used, 1], c=np.log10(u.counts[used]), s=14, cmap="viridis")
    ax2.scatter(xy[~used, 0], xy[~used, 1], marker="x", s=14, c="#d62728", label="dead")
    fig.colorbar(sc, ax=ax2, label="log10 usage")
    ax2.set(title="Codebook PCA, by usage", **axis_labels)
    if (~used).any():
        ax2.legend(fontsize=8)
    if A.tissue is not None:
        dom = A.tissue.dominant
        for t, (name, color) in enumerate(zip(TISSUE_NAMES, TISSUE_COLORS, strict=True)):
            sel = dom == t
            ax3.scatter(xy[sel, 0], xy[sel, 1], s=14, color=color, edgecolor="#555555",
                        linewidth=0.3, label=f"{name} ({sel.sum()})")
        ax3.scatter(xy[~used, 0], xy[~used, 1], marker="x", s=14, c="#d62728", label="dead")
        ax3.legend(fontsize=7, loc="best")
    ax3.set(title="Codebook PCA, by main tissue", **axis_labels)
    return fig


def tissue_figure(A: CodebookAnalysis, top: int = 48) -> Figure:
    """(a) tissue mix of the ``top`` most used codes, grouped by main tissue; (b) purity vs
    usage of every used code; (c) I(code; tissue) against H(tissue)."""
    ct, u = A.tissue, A.usage
    if ct is None:
        raise ValueError("No masks: codes vs tissue needs the segmentation masks of the slices.")
    fig = Figure(figsize=(13, 3.9), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[2.2, 1.2, 0.7])
    ids = u.order[:min(top, u.used)]
    ids = ids[np.lexsort((-ct.purity[ids], ct.dominant[ids]))]      # group by main tissue
    bottom = np.zeros(len(ids))
    for t, (name, color) in enumerate(zip(TISSUE_NAMES, TISSUE_COLORS, strict=True)):
        share = ct.distribution[ids, t]
        ax1.bar(np.arange(len(ids)), share, bottom=bottom, color=color, width=0.9,
                edgecolor="#777777", linewidth=0.3, label=name)
        bottom += share
    ax1.set_xticks(np.arange(len(ids)), [str(i) for i in ids], rotation=90, fontsize=6)
    ax1.set(xlim=(-0.6, len(ids) - 0.4), ylim=(0, 1), ylabel="share of the code's pixels",
            xlabel="code id", title=f"Tissue mix of the {len(ids)} most used codes")
    ax1.legend(fontsize=7, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.08))
    used = u.counts > 0
    colors = [TISSUE_COLORS[t] for t in ct.dominant[used]]
    ax2.scatter(u.counts[used], ct.purity[used], c=colors, s=14, edgecolor="#555555", lw=0.3)
    ax2.axhline(ct.mean_purity, color="#2ca02c", ls="--", lw=1,
                label=f"weighted mean {ct.mean_purity:.2f}")
    ax2.set(xscale="log", ylim=(0.2, 1.02), xlabel="usage (cells, log)", ylabel="purity",
            title="Purity of each code")
    ax2.legend(fontsize=8, loc="lower right")
    ax3.bar([0, 1], [ct.tissue_entropy_bits, ct.mi_bits], color=["#999999", "#2ca02c"])
    ax3.set_xticks([0, 1], ["H(tissue)", "I(code;\ntissue)"], fontsize=8)
    for x, v in enumerate([ct.tissue_entropy_bits, ct.mi_bits]):
        ax3.text(x, v, f"{v:.2f}", ha="center", va="bottom", fontsize=8)
    ax3.set(ylabel="bits", title="Information")
    return fig


# ---------------------------------------------------------------------------------------------
# The three views (shared by the widgets and their static twins)
# ---------------------------------------------------------------------------------------------
def draw_slice_view(axes, A: CodebookAnalysis, index: int, cmap=None) -> None:
    """Slice | reconstruction | code map of slice ``index`` on three axes."""
    img, rec, codes = A.images[index, 0], A.recons[index, 0], A.codes[index]
    cmap = cmap or code_colormap(A.codebook_size)
    n_codes = len(np.unique(codes.numpy()))
    p = float(psnr(rec[None, None], img[None, None]))
    show_image(axes[0], img, A.title(index))
    show_image(axes[1], rec, f"reconstruction ({p:.1f} dB PSNR)")
    show_image(axes[2], codes, f"code map {tuple(codes.shape)}: {n_codes} codes",
                cmap=cmap, vmin=-0.5, vmax=A.codebook_size - 0.5)


def slice_views_figure(A: CodebookAnalysis, indices) -> Figure:
    """Static twin of the slice slider: one row per slice index."""
    fig = Figure(figsize=(8.4, 2.9 * len(indices)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(indices), 3))
    cmap = code_colormap(A.codebook_size)
    for row, i in zip(axes, indices, strict=True):
        draw_slice_view(row, A, int(i), cmap)
    return fig


def slices_with_code(A: CodebookAnalysis, code: int, n: int = 4) -> np.ndarray:
    """The ``n`` slices in which ``code`` covers the most cells."""
    per_slice = (A.codes == code).sum(dim=(1, 2)).numpy()
    order = np.argsort(-per_slice, kind="stable")[:n]
    return order[per_slice[order] > 0]


def code_view_figure(A: CodebookAnalysis, code: int, n_slices: int = 4,
                     n_patches: int = 8) -> Figure:
    """Everything about one code: where it occurs (red), usage, tissue mix, decoded appearance,
    and image patches where it is used."""

    fig = Figure(figsize=(11, 6.2), layout="constrained")
    grid = fig.add_gridspec(3, max(n_slices, 4), height_ratios=[1.25, 1.0, 0.55])
    u = A.usage
    rank = int(np.flatnonzero(u.order == code)[0]) + 1
    share = u.counts[code] / max(u.counts.sum(), 1)
    n = int(u.counts[code])
    usage = f"used in {n} cell{'s' if n != 1 else ''} ({100 * share:.2f}%), rank {rank}" \
        if n else "never used: a dead code"
    fig.suptitle(f"code {code} of {u.codebook_size}: {usage}", fontsize=11)
    slices = slices_with_code(A, code, n_slices)
    f = A.downsample
    for j in range(n_slices):
        ax = fig.add_subplot(grid[0, j])
        if j >= len(slices):
            ax.axis("off")
            if j == 0:
                ax.text(0, 0.5, "never chosen on these slices:\nno locations, no patches",
                        fontsize=10, va="center")
            continue
        i = int(slices[j])
        hit = (A.codes[i] == code).numpy().astype(float)
        overlay = np.zeros((*hit.shape, 4))
        overlay[..., 0], overlay[..., 3] = 1.0, 0.55 * hit
        n_hit = int(hit.sum())
        show_image(ax, A.images[i, 0], f"#{i}: {n_hit} cell{'s' if n_hit > 1 else ''}")
        H = A.images.shape[-1]
        ax.imshow(overlay, extent=(-0.5, H - 0.5, H - 0.5, -0.5), interpolation="nearest")
    ax_t = fig.add_subplot(grid[1, :2])
    if A.tissue is not None and u.counts[code]:
        dist = A.tissue.distribution[code]
        ax_t.barh(np.arange(4), dist, color=TISSUE_COLORS, edgecolor="#555555")
        ax_t.set_yticks(np.arange(4), TISSUE_NAMES, fontsize=8)
        ax_t.set(xlim=(0, 1), xlabel="share of the code's pixels",
                 title=f"tissue mix (purity {A.tissue.purity[code]:.2f})")
        ax_t.invert_yaxis()
    else:
        ax_t.axis("off")
        ax_t.set_title("no tissue data" if A.tissue is None else "never used", fontsize=9)
    ax_d = fig.add_subplot(grid[1, 2])
    show_image(ax_d, A.decoded(code), "decoded: map filled\nwith this code")
    ax_v = fig.add_subplot(grid[1, 3])
    ax_v.bar(np.arange(u.codebook_size), u.counts[u.order], width=1.0, color="#bbbbbb")
    ax_v.bar(rank - 1, u.counts[code], width=max(u.codebook_size / 60, 1), color="#d62728")
    ax_v.set(yscale="log", xlabel="code rank", title="its usage rank", xticks=[])
    patches, locs = code_patches(A.images, A.codes, code, f, max_patches=n_patches)
    sub = grid[2, :].subgridspec(1, n_patches)
    for j in range(n_patches):
        ax = fig.add_subplot(sub[0, j])
        if j < len(patches):
            show_image(ax, patches[j], f"#{locs[j][0]} ({locs[j][1]},{locs[j][2]})")
            c = patches.shape[-1] / 2 - 0.5
            ax.add_patch(_square(c, f))
        else:
            ax.axis("off")
    return fig


def _square(center: float, size: int):
    from matplotlib.patches import Rectangle

    return Rectangle((center - size / 2, center - size / 2), size, size, fill=False,
                     edgecolor="#d62728", lw=1)


def swap_view_figure(A: CodebookAnalysis, index: int, code_a: int, code_b: int) -> Figure:
    """Code swap: decode slice ``index`` before and after replacing code A by code B."""
    before, after, changed = swap_effect(A.model, A.codes[index], code_a, code_b)
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    axes = fig.subplots(1, 4)
    H = before.shape[-1]
    show_image(axes[0], A.images[index, 0], A.title(index))
    show_image(axes[1], before, "decoded code map")
    show_image(axes[2], after, f"code {code_a} -> {code_b} ({int(changed.sum())} cells)")
    diff = np.abs(after - before)
    vmax = max(float(diff.max()), 1e-3)
    show_image(axes[3], diff, f"|change| (max {vmax:.2f})", cmap="magma", vmax=vmax)
    edge = np.zeros((*changed.shape, 4))
    edge[..., 1], edge[..., 3] = 1.0, 0.35 * changed
    axes[0].imshow(edge, extent=(-0.5, H - 0.5, H - 0.5, -0.5), interpolation="nearest")
    return fig


def swap_views_figure(A: CodebookAnalysis, swaps) -> list[Figure]:
    """Static twins of the code-swap control: one figure per (index, code_a, code_b)."""
    return [swap_view_figure(A, i, a, b) for i, a, b in swaps]


"""Vector quantisation on a 2-D toy, for notebook 02: every vector can be drawn.

* :func:`toy_points`, :func:`plot_voronoi` -- "encoder outputs" and the Voronoi cells of a codebook;
* :func:`plot_vq_step` -- one codebook-loss step and one EMA step (van den Oord et al. 2017);
* :func:`straight_through_demo` -- the straight-through estimator with real gradients;
* :func:`compare_codebook_updates` -- loss vs EMA vs EMA + k-means + restarts, from a bad start;
* :func:`fsq_cells`, :func:`plot_fsq_vs_vq` -- finite scalar quantisation's fixed grid next to a
  learnt codebook's Voronoi cells (Mentzer et al. 2023).

All use the library's own quantizers and return a ``Figure`` (nothing is saved here).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .fsq import FSQ
from .quantizers import VectorQuantizer, VectorQuantizerEMA, kmeans

__all__ = ["toy_points", "as_grid", "plot_voronoi", "plot_vq_step", "straight_through_demo",
           "compare_codebook_updates", "fsq_cells", "plot_fsq_vs_vq"]


def toy_points(n: int = 600, seed: int = 0) -> torch.Tensor:
    """(n, 2) 'encoder outputs': three blobs and an arc, away from the origin."""
    g = np.random.default_rng(seed)
    centres = np.array([[2.0, 2.5], [4.0, 0.5], [0.5, 0.8]])
    blobs = centres[g.integers(0, 3, n // 2)] + 0.35 * g.standard_normal((n // 2, 2))
    t = g.uniform(0.2, 1.4, n - n // 2) * np.pi
    arc = np.c_[2.2 + 1.8 * np.cos(t), -0.5 + 1.8 * np.sin(t) - 1.5]
    arc += 0.12 * g.standard_normal(arc.shape)
    return torch.tensor(np.r_[blobs, arc], dtype=torch.float32)


def as_grid(points: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (1, D, 1, N): the toy points as a one-image 'encoder output' for a quantizer."""
    return points.t().reshape(1, points.shape[1], 1, -1)


def plot_voronoi(ax, points, codebook, codes=None, lim=None, title=None):
    """Colour the plane by nearest code (the Voronoi cells), points by their code, codes as stars."""
    pts, book = points.numpy(), codebook.detach().numpy()
    lim = lim or (pts.min(0) - 1, pts.max(0) + 1)
    xs, ys = np.meshgrid(np.linspace(lim[0][0], lim[1][0], 300), np.linspace(lim[0][1], lim[1][1], 300))
    grid = np.c_[xs.ravel(), ys.ravel()]
    cells = ((grid[:, None] - book[None]) ** 2).sum(-1).argmin(1).reshape(xs.shape)
    cmap = plt.get_cmap("tab20", len(book))
    ax.imshow(cells, origin="lower", extent=(lim[0][0], lim[1][0], lim[0][1], lim[1][1]),
              cmap=cmap, vmin=-0.5, vmax=len(book) - 0.5, alpha=0.25, aspect="auto")
    ax.contour(xs, ys, cells, levels=np.arange(len(book)) + 0.5, colors="k", linewidths=0.4)
    if codes is None:
        codes = ((pts[:, None] - book[None]) ** 2).sum(-1).argmin(1)
    ax.scatter(pts[:, 0], pts[:, 1], c=np.asarray(codes), cmap=cmap, vmin=-0.5,
               vmax=len(book) - 0.5, s=6)
    ax.scatter(book[:, 0], book[:, 1], marker="*", s=160, c="k", edgecolors="w", zorder=3)
    ax.set_xlim(lim[0][0], lim[1][0])
    ax.set_ylim(lim[0][1], lim[1][1])
    if title:
        ax.set_title(title, fontsize=10)
    return lim


def plot_vq_step(points: torch.Tensor, codebook: torch.Tensor, move: float = 0.5,
                 decay: float = 0.5) -> Figure:
    """Assignments + Voronoi cells, then ONE codebook update by each rule (arrows old -> new).

    The SGD learning rate is chosen so that the most popular code moves ``move`` of the way to
    the mean of its points; a code's gradient is proportional to how many points it won, so the
    others move less (and unused codes not at all). EMA moves every used code to (nearly) the
    mean of its points when ``decay`` is small."""
    k = codebook.shape[0]
    loss_vq = VectorQuantizer(k, 2, beta=0.25).train()
    loss_vq._set_codes(torch.arange(k), codebook)
    out = loss_vq(as_grid(points))
    out.losses["codebook"].backward()
    # grad_k = 2 n_k (e_k - mean_k) / (N * D)  ->  lr = move * N * D / (2 max n_k)
    n_max = int(torch.bincount(out.codes.flatten(), minlength=k).max())
    lr = move * points.numel() / (2 * n_max)
    after_loss = (loss_vq.embedding - lr * loss_vq.embedding.grad).detach()  # one SGD step
    ema_vq = VectorQuantizerEMA(k, 2, decay=decay).train()
    ema_vq._set_codes(torch.arange(k), codebook)
    ema_vq(as_grid(points))
    after_ema = ema_vq.codebook.clone()
    codes = out.codes.flatten()
    fig = Figure(figsize=(15, 4.8))
    axes = fig.subplots(1, 3)
    lim = plot_voronoi(axes[0], points, codebook, codes,
                       title=f"assignment: {len(points)} points, K={k} codes, Voronoi cells")
    for ax, new, title in ((axes[1], after_loss, f"codebook loss, one SGD step (lr={lr:.0f})"),
                           (axes[2], after_ema, f"EMA, one step (decay={decay})")):
        plot_voronoi(ax, points, codebook, codes, lim=lim, title=title)
        for a, b in zip(codebook.numpy(), new.numpy(), strict=True):
            if np.linalg.norm(b - a) > 1e-6:
                ax.annotate("", b, a, arrowprops=dict(arrowstyle="->", color="red", lw=1.8))
        ax.scatter(new[:, 0], new[:, 1], marker="*", s=160, c="red", edgecolors="w", zorder=4)
    return fig


def straight_through_demo(points: torch.Tensor, codebook: torch.Tensor, n: int = 6,
                          beta: float = 0.25, seed: int = 0) -> Figure:
    """Quantize ``n`` toy points, let a 'decoder loss' ``||z_q - target||^2`` act on z_q, and
    show that the gradient arriving at z_e equals dL/dz_q (plus the commitment pull).
    Returns ``(figure, {"dL/dz_q", "dL/dz_e (decoder)", "dL/dz_e (commitment)"})``."""
    g = torch.Generator().manual_seed(seed)
    z = points[torch.randperm(len(points), generator=g)[:n]].clone().requires_grad_(True)
    vq = VectorQuantizer(codebook.shape[0], 2, beta=beta).eval()
    vq._set_codes(torch.arange(codebook.shape[0]), codebook)
    out = vq(as_grid(z))
    z_q = out.quantized                                           # (1, 2, 1, n)
    z_q.retain_grad()
    target = as_grid(z.detach() + torch.tensor([0.6, -0.4]))      # the decoder 'wants' these
    ((z_q - target) ** 2).sum().backward(retain_graph=True)
    g_q, g_e = z_q.grad.reshape(2, -1).t().clone(), z.grad.clone()
    z.grad = None
    (beta * out.losses["commitment"]).backward()
    g_c = z.grad.clone()
    zq = z_q.detach().reshape(2, -1).t()
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    plot_voronoi(ax, points, codebook, title="straight-through: dL/dz_q is copied to z_e")
    zd = z.detach()
    scale = 0.3
    for a, b, gq, ge, gc in zip(zd, zq, g_q, g_e, g_c, strict=True):
        ax.plot(*zip(a.numpy(), b.numpy(), strict=True), "k:", lw=1)
        ax.annotate("", b - scale * gq, b, arrowprops=dict(arrowstyle="->", color="blue", lw=2))
        ax.annotate("", a - scale * ge, a, arrowprops=dict(arrowstyle="->", color="red", lw=2))
        ax.annotate("", a - 20 * scale * gc, a, arrowprops=dict(arrowstyle="->", color="purple", lw=1.5))
    ax.scatter(zd[:, 0], zd[:, 1], s=50, c="red", edgecolors="k", zorder=5, label="z_e (encoder)")
    ax.plot([], [], color="blue", label="-dL/dz_q at the code")
    ax.plot([], [], color="red", label="-dL/dz_e: the same arrow")
    ax.plot([], [], color="purple", label="-commitment grad (drawn 20x longer)")
    ax.legend(loc="lower left", fontsize=8)
    return fig, {"dL/dz_q": g_q, "dL/dz_e (decoder)": g_e, "dL/dz_e (commitment)": g_c}


def compare_codebook_updates(points: torch.Tensor, k: int = 12, steps: int = 100,
                             batch: int = 128, lr: float = 0.05, init_scale: float = 2.0,
                             seed: int = 0) -> Figure:
    """Learn a codebook for the fixed toy points three ways from the same random start (Gaussian
    around the data, ``init_scale`` times wider than it, as when a codebook's scale does not
    match the encoder's): codebook loss + Adam, EMA, and EMA with k-means init and
    dead-code restarts. The encoder is frozen here (the points do not move), which isolates the
    codebook rule. Returns ``(figure, history)`` with per-step "distortion" (mean squared
    distance of every point to its nearest code) and "used_fraction"."""
    variants = {
        "codebook loss (Adam)": lambda: VectorQuantizer(k, 2),
        "EMA": lambda: VectorQuantizerEMA(k, 2, decay=0.9),
        "EMA + k-means init + restarts": lambda: VectorQuantizerEMA(
            k, 2, decay=0.9, kmeans_init=True, dead_code_steps=10),
    }
    g0 = torch.Generator().manual_seed(seed)
    start = points.mean(0) + init_scale * points.std(0) * torch.randn(k, 2, generator=g0)  # (K, 2)
    history, finals, paths = {}, {}, {}
    for name, make in variants.items():
        torch.manual_seed(seed)
        vq = make().train()
        vq._set_codes(torch.arange(k), start)
        opt = torch.optim.Adam(vq.parameters(), lr=lr) if not vq.uses_ema else None
        g = torch.Generator().manual_seed(seed)
        trail, mse, used = [vq.codebook.detach().clone()], [], []
        for _ in range(steps):
            idx = torch.randint(0, len(points), (batch,), generator=g)
            out = vq(as_grid(points[idx]))
            if opt is not None:
                opt.zero_grad()
                out.losses["codebook"].backward()
                opt.step()
            trail.append(vq.codebook.detach().clone())
            with torch.no_grad():
                d = ((points[:, None] - trail[-1][None]) ** 2).sum(-1)      # (N, K)
                mse.append(float(d.min(1).values.mean()))
                used.append(len(d.argmin(1).unique()) / k)
        history[name] = {"distortion": mse, "used_fraction": used}
        finals[name], paths[name] = trail[-1], torch.stack(trail)          # (steps+1, K, 2)
    fig = Figure(figsize=(20, 4.8))
    axes = fig.subplots(1, 4)
    lim = (points.numpy().min(0) - 1, points.numpy().max(0) + 1)
    for ax, name in zip(axes[:3], variants, strict=True):
        plot_voronoi(ax, points, finals[name], lim=lim,
                     title=f"{name}\n{history[name]['used_fraction'][-1]:.0%} of codes used")
        for t in paths[name].permute(1, 0, 2).numpy():                   # one trail per code
            ax.plot(t[:, 0], t[:, 1], "-", color="k", lw=0.7, alpha=0.6)
        ax.scatter(*start.numpy().T, marker="x", c="k", s=25, label="start")
    for name in variants:
        axes[3].plot(history[name]["distortion"], label=name)
    axes[3].set_yscale("log")
    axes[3].set_xlabel("update step")
    axes[3].set_ylabel("mean squared distance to nearest code")
    axes[3].legend(fontsize=8)
    axes[3].set_title("quantization error")
    fig.tight_layout()
    return fig, history


# ---- FSQ: a grid instead of a codebook ----------------------------------------------------------
def fsq_cells(points: torch.Tensor, levels=(4, 3), scale: float = 1.0):
    """Quantise 2-D points with FSQ after a fixed affine "encoder" (standardise, times ``scale``).

    Args:
        points: (N, 2) toy points.
        levels: FSQ levels of the two dimensions (``prod(levels)`` codes).
        scale: how far the "encoder" spreads the points before ``tanh`` bounds them.

    Returns:
        ``(fsq, encode)``: the quantiser and a function from (M, 2) points to (M,) codes.
    """
    fsq = FSQ(levels, code_dim=2)
    mean, std = points.mean(0), points.std(0)

    def encode(p):
        return fsq.codes_to_indices(fsq.quantize(scale * (p - mean) / std))

    return fsq, encode


def plot_fsq_vs_vq(points: torch.Tensor, levels=(4, 3), seed: int = 0) -> tuple[Figure, dict]:
    """Left: a learnt codebook of ``K = prod(levels)`` codes (k-means) and its Voronoi cells.
    Right: FSQ with the same number of codes: the cells are the rectangles of a fixed grid
    (bent by ``tanh``), whatever the data; stars are the mean of each used cell's points, the
    best a decoder could output for that code. Returns ``(figure, {"vq"|"fsq": {"used", "mse"}})``.

    Args:
        points: (N, 2) toy points.
        levels: FSQ levels, e.g. (4, 3) for 12 codes.
        seed: seed of the k-means start.
    """
    k = int(np.prod(levels))
    book = kmeans(points, k, iters=25, generator=torch.Generator().manual_seed(seed))
    _, encode = fsq_cells(points, levels)
    codes_vq = ((points[:, None] - book[None]) ** 2).sum(-1).argmin(1)
    codes_fsq = encode(points)
    # the best a decoder can do for a grid cell: output the mean of the points in it
    used = codes_fsq.unique()
    centres = torch.zeros(k, 2).index_add_(0, codes_fsq, points)
    centres = centres / torch.bincount(codes_fsq, minlength=k).clamp_min(1)[:, None]
    stats = {"vq": {"used": len(codes_vq.unique()),
                    "mse": float(((points - book[codes_vq]) ** 2).sum(1).mean())},
             "fsq": {"used": len(codes_fsq.unique()),
                     "mse": float(((points - centres[codes_fsq]) ** 2).sum(1).mean())}}
    fig = Figure(figsize=(13, 5.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    lim = plot_voronoi(ax1, points, book, codes_vq,
                       title=f"learnt codebook (k-means), K={k}: Voronoi cells follow the data\n"
                             f"{stats['vq']['used']} codes used, error {stats['vq']['mse']:.3f}")
    xs, ys = np.meshgrid(np.linspace(lim[0][0], lim[1][0], 300), np.linspace(lim[0][1], lim[1][1], 300))
    grid = torch.tensor(np.c_[xs.ravel(), ys.ravel()], dtype=torch.float32)
    cells = encode(grid).reshape(xs.shape).numpy()
    cmap = plt.get_cmap("tab20", k)
    ax2.imshow(cells, origin="lower", extent=(lim[0][0], lim[1][0], lim[0][1], lim[1][1]),
               cmap=cmap, vmin=-0.5, vmax=k - 0.5, alpha=0.25, aspect="auto")
    ax2.contour(xs, ys, cells, levels=np.arange(k) + 0.5, colors="k", linewidths=0.4)
    pts = points.numpy()
    ax2.scatter(pts[:, 0], pts[:, 1], c=codes_fsq.numpy(), cmap=cmap, vmin=-0.5, vmax=k - 0.5, s=6)
    c = centres[used].numpy()                                        # decoded points of used cells
    ax2.scatter(c[:, 0], c[:, 1], marker="*", s=160, c="k", edgecolors="w", zorder=3)
    ax2.set(xlim=(lim[0][0], lim[1][0]), ylim=(lim[0][1], lim[1][1]))
    ax2.set_title(f"FSQ, levels {levels} = {k} codes: a fixed grid, nothing learnt\n"
                  f"{stats['fsq']['used']} codes used, error {stats['fsq']['mse']:.3f}", fontsize=10)
    return fig, stats

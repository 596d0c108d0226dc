"""One figure convention for every notebook: figure functions return a ``Figure``; ``save_figure``
writes it to ``runs/<preset>/figures/<name>.png``; ``show`` saves and displays it.

Images may be torch tensors or numpy arrays, (N, 1, H, W), (N, H, W) or (H, W), uint8 (0..255)
or float (0..1). Slices are shown as stored: the front of the head at the left.
"""

from __future__ import annotations

import inspect
import os
import textwrap
from pathlib import Path

import numpy as np
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .common import TISSUE_COLORS, TISSUE_NAMES
from .paths import figure_dir

__all__ = ["to_images", "save_figure", "show", "image_grid", "image_rows", "mask_to_rgba",
           "tissue_legend", "tissue_colormap", "show_image", "figure_png", "source_of",
           "show_source"]


def to_images(x) -> np.ndarray:
    """Anything image-like -> float numpy (N, H, W) in [0, 1]."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 4:
        a = a[:, 0]                                                        # (N, 1, H, W) -> (N, H, W)
    return np.clip(a.astype(np.float32), 0.0, 1.0)


def save_figure(fig: Figure, run_dir: str | os.PathLike, name: str, dpi: int = 110) -> Path:
    """Write ``fig`` to ``<run_dir>/figures/<name>.png`` and return the path.

    Args:
        fig: the figure.
        run_dir: the run folder (``runs/<preset>``); ``figures/`` is created under it.
        name: file name without ``.png``, by convention prefixed with the notebook number.
        dpi: resolution.
    """
    path = figure_dir(run_dir) / f"{Path(name).stem}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def show(fig: Figure, run_dir: str | os.PathLike, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` like :func:`save_figure` and display that PNG in the notebook, so a reader
    sees exactly the file on disk (no matplotlib backend set-up needed).

    Args:
        fig: the figure.
        run_dir: the run folder.
        name: file name without ``.png``.
        dpi: resolution.
    """
    path = save_figure(fig, run_dir, name, dpi)
    try:
        from IPython.display import Image, display

        display(Image(filename=str(path)))
    except ImportError:                       # plain Python: the file is the output
        print(f"saved {path}")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def source_of(*objects) -> str:
    """The source code of library functions, classes or methods, as the installed library has
    it (so the code a notebook explains and the code that runs cannot drift apart).

    Args:
        *objects: functions, classes or methods.
    """
    return "\n\n".join(textwrap.dedent(inspect.getsource(o)).rstrip() for o in objects)


def show_source(*objects) -> None:
    """Display :func:`source_of` as a highlighted code block in a notebook (printed elsewhere).

    Args:
        *objects: functions, classes or methods.
    """
    text = source_of(*objects)
    try:
        from IPython.display import Markdown, display

        display(Markdown(f"```python\n{text}\n```"))
    except ImportError:
        print(text)


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (for widgets that show an image)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def show_image(ax, img, title: str | None = None, **kw) -> None:
    """A grey image on ``ax`` without ticks, values 0..1 unless ``vmin``/``vmax`` say otherwise."""
    ax.imshow(np.asarray(img), cmap=kw.pop("cmap", "gray"), vmin=kw.pop("vmin", 0),
              vmax=kw.pop("vmax", 1), interpolation=kw.pop("interpolation", "nearest"), **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=kw.get("fontsize", 8))


def _grid(n: int, ncol: int, cell: float, extra_h: float = 0.35):
    ncol = max(1, min(ncol, n))
    nrow = int(np.ceil(n / ncol))
    fig = Figure(figsize=(cell * ncol, (cell + extra_h) * nrow))
    axes = fig.subplots(nrow, ncol, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def image_grid(images, ncol: int = 8, titles=None, suptitle: str | None = None,
               cell: float = 1.6, cmap: str = "gray") -> Figure:
    """A grid of grey images with optional per-image titles.

    Args:
        images: (N, 1, H, W), (N, H, W) or (H, W), uint8 or float in [0, 1].
        ncol: columns.
        titles: one string per image, or None.
        suptitle: a title over the grid.
        cell: inches per image.
        cmap: matplotlib colour map.
    """
    imgs = to_images(images)
    fig, axes = _grid(len(imgs), ncol, cell)
    for i, (ax, im) in enumerate(zip(axes.flat, imgs, strict=False)):
        ax.imshow(im, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def image_rows(rows, title: str | None = None, cell: float = 1.5) -> Figure:
    """One row of images per ``(label, images)`` pair, the label on the left.

    Args:
        rows: a list of ``(label, images (n, 1, H, W))``.
        title: a title over the figure.
        cell: inches per image.
    """
    n = max(len(imgs) for _, imgs in rows)
    fig = Figure(figsize=(cell * n + 1.2, (cell + 0.05) * len(rows) + 0.4))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        imgs = to_images(imgs)
        for j in range(n):
            ax = axes[r, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(imgs):
                ax.imshow(imgs[j], cmap="gray", vmin=0, vmax=1)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def tissue_colormap() -> ListedColormap:
    """The tissue palette as a colour map for label images 0..3."""
    return ListedColormap(TISSUE_COLORS, name="tissues")


def mask_to_rgba(mask, alpha: float = 0.45) -> np.ndarray:
    """Labels (H, W) 0..3 -> RGBA (H, W, 4): tissue colours, transparent background."""
    lut = np.array([to_rgba(c, 0.0 if i == 0 else alpha) for i, c in enumerate(TISSUE_COLORS)])
    return lut[np.asarray(mask, dtype=np.int64)]


def tissue_legend(fig_or_ax, loc="lower center", with_background: bool = False, **kw):
    """A legend of the tissue colours (CSF, grey and white matter; optionally background)."""
    start = 0 if with_background else 1
    handles = [Patch(color=c, label=n) for n, c in
               zip(TISSUE_NAMES[start:], TISSUE_COLORS[start:], strict=True)]
    return fig_or_ax.legend(handles=handles, loc=loc, ncol=len(handles), frameon=False, **kw)

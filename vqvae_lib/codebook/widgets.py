"""Interactive codebook views for JupyterLab (ipywidgets 8).

Three views over a :class:`~vqvae_lib.codebook.CodebookAnalysis`:

* ``slice_slider``  -- slice | reconstruction | code map, one slice at a time;
* ``code_slider``   -- one code at a time (browse by usage rank or type its id): where it occurs,
  its usage, tissue mix, decoded appearance and patches;
* ``code_swap``     -- replace code A by code B in one slice's map and see the decoded change;
  it opens on ``codebook.suggest_swap``'s pair (the slice's main white-matter code -> a CSF code),
  so the first picture already shows a visible edit, and a caption names what was swapped.

Each view redraws a figure from ``codebook.figures`` into an ``ipywidgets.Image`` as PNG. That
needs no interactive matplotlib backend (no ipympl) and shows the *same* picture as the static
twin figures, which is what an executed notebook (papermill, HTML) keeps. ``explore`` puts the
three views in tabs.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np

from ..common import TISSUE_NAMES
from ..viz import figure_png
from . import figures as P
from .analysis import CodebookAnalysis, suggest_swap

__all__ = ["figure_png", "slice_slider", "code_slider", "code_swap", "swap_caption", "explore"]


class _FigureView(W.VBox):
    """Controls on top, an optional caption, a PNG of the current figure below; ``redraw``
    re-renders both (``caption`` is a callable returning HTML, or None)."""

    def __init__(self, controls: list, draw, dpi: int = 90, caption=None):
        self._draw, self._dpi, self._caption = draw, dpi, caption
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%", height="auto"))
        self.status = W.HTML()
        self.caption = W.HTML()
        super().__init__([W.HBox(controls), self.caption, self.status, self.image])
        self.redraw()

    def redraw(self, *_):
        try:
            self.image.value = figure_png(self._draw(), self._dpi)
            self.caption.value = self._caption() if self._caption else ""
            self.status.value = ""
        except Exception as err:               # show the problem in place, keep the controls alive
            self.status.value = f"<span style='color:#c00'>{type(err).__name__}: {err}</span>"


def slice_slider(A: CodebookAnalysis, index: int = 0) -> _FigureView:
    """Slide through the slices: the slice, its reconstruction and its code map."""
    slider = W.IntSlider(value=index, min=0, max=len(A.images) - 1, description="slice",
                         continuous_update=False, layout=W.Layout(width="60%"))
    cmap = P.code_colormap(A.codebook_size)

    def draw():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(8.4, 2.9), layout="constrained")
        P.draw_slice_view(fig.subplots(1, 3), A, slider.value, cmap)
        return fig

    view = _FigureView([slider], draw)
    view.slider = slider
    slider.observe(view.redraw, names="value")
    return view


def code_slider(A: CodebookAnalysis, rank: int = 1) -> _FigureView:
    """Browse codes by usage rank (1 = most used) or jump to a code id."""
    K = A.codebook_size
    rank_slider = W.IntSlider(value=rank, min=1, max=K, description="usage rank",
                              continuous_update=False, layout=W.Layout(width="55%"),
                              style={"description_width": "initial"})
    code_box = W.BoundedIntText(value=int(A.usage.order[rank - 1]), min=0, max=K - 1,
                                description="code id", layout=W.Layout(width="160px"))
    syncing = {"on": False}

    def from_rank(change):
        if not syncing["on"]:
            syncing["on"] = True
            code_box.value = int(A.usage.order[change["new"] - 1])
            syncing["on"] = False

    def from_code(change):
        if not syncing["on"]:
            syncing["on"] = True
            rank_slider.value = int(np.flatnonzero(A.usage.order == change["new"])[0]) + 1
            syncing["on"] = False

    view = _FigureView([rank_slider, code_box], lambda: P.code_view_figure(A, code_box.value))
    rank_slider.observe(from_rank, names="value")
    code_box.observe(from_code, names="value")
    code_box.observe(view.redraw, names="value")   # one redraw per change, from the code id
    view.slider, view.code_box = rank_slider, code_box
    return view


def _codes_in_slice(A: CodebookAnalysis, index: int) -> list[tuple[str, int]]:
    ids, counts = np.unique(A.codes[index].numpy(), return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [(f"{ids[i]} ({counts[i]} cells)", int(ids[i])) for i in order]


def _code_tissue(A: CodebookAnalysis, code: int) -> str:
    """'white matter code 17' (the code's main tissue, when masks are known) or 'code 17'."""
    if A.tissue is None or A.tissue.dominant[code] < 0:
        return f"code {code}"
    return f"{TISSUE_NAMES[int(A.tissue.dominant[code])]} code {code}"


def swap_caption(A: CodebookAnalysis, index: int, code_a: int, code_b: int) -> str:
    """What a swap did, in words: 'white matter code 17 -> CSF code 3: 41 cells of slice ...'.

    Args:
        A: the analysis the view shows.
        index: the slice (row of ``A.codes``).
        code_a: the code that is replaced.
        code_b: the code put in its place.
    """
    cells = int((A.codes[index] == code_a).sum())
    return (f"<b>swapped {_code_tissue(A, code_a)} &rarr; {_code_tissue(A, code_b)}</b>: "
            f"{cells} cells of slice {A.title(index)}")


def code_swap(A: CodebookAnalysis, index: int = 0, code_a: int | None = None,
              code_b: int | None = None) -> _FigureView:
    """Pick a slice, a code A present in it and any code B; see the decoded change.

    The view opens (and, when the slice changes, resets) on ``suggest_swap``'s pair: the code
    covering most white matter in the slice -> the most CSF-like common code, a swap that
    visibly darkens the slice. A caption above the figure says what was swapped.

    Args:
        A: the analysis to show (``codebook.analyse_slices``).
        index: the slice to start on.
        code_a: the code to replace (must occur in the slice); None -> ``suggest_swap``'s A.
        code_b: the replacement code; None -> ``suggest_swap``'s B.
    """
    K = A.codebook_size
    slice_box = W.IntSlider(value=index, min=0, max=len(A.images) - 1, description="slice",
                            continuous_update=False)
    options = _codes_in_slice(A, index)
    a0, b0 = suggest_swap(A, index)
    a_box = W.Dropdown(options=options, value=a0 if code_a is None else code_a,
                       description="code A", layout=W.Layout(width="220px"))
    code_b_box = W.IntSlider(value=b0 if code_b is None else code_b, min=0, max=K - 1,
                             description="code B", continuous_update=False)
    busy = {"on": False}

    def new_slice(change):
        busy["on"] = True                     # one redraw after A's options and both values change
        a, b = suggest_swap(A, change["new"])
        a_box.options = _codes_in_slice(A, change["new"])
        a_box.value, code_b_box.value = a, b
        busy["on"] = False
        view.redraw()

    def maybe_redraw(change):
        if not busy["on"]:
            view.redraw()

    view = _FigureView([slice_box, a_box, code_b_box],
                       lambda: P.swap_view_figure(A, slice_box.value, a_box.value,
                                                  code_b_box.value),
                       caption=lambda: swap_caption(A, slice_box.value, a_box.value,
                                                    code_b_box.value))
    slice_box.observe(new_slice, names="value")
    a_box.observe(maybe_redraw, names="value")
    code_b_box.observe(maybe_redraw, names="value")
    view.slider, view.code_a, view.code_b = slice_box, a_box, code_b_box
    return view


def explore(A: CodebookAnalysis) -> W.Tab:
    """The three views in tabs."""
    tab = W.Tab(children=[slice_slider(A), code_slider(A), code_swap(A)])
    for i, title in enumerate(["slice slider", "code slider", "code swap"]):
        tab.set_title(i, title)
    return tab

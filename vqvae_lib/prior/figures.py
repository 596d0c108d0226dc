"""Figures of notebook 06 about the prior, and its live sampler. Every function returns a
matplotlib ``Figure`` and saves nothing; the notebook calls ``viz.show(fig, run_dir, "06_name")``.
The figures about how real the samples are live in :mod:`vqvae_lib.realism.figures`.
"""

from __future__ import annotations

import time

import ipywidgets as W
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..viz import figure_png, image_grid
from .pixelcnn import GatedPixelCNN, plain_pixelcnn
from .sample import default_labels, generate

__all__ = ["causal_receptive_field", "receptive_field_map", "receptive_fields", "prior_training",
           "nll_bars", "Sampler"]

_RF_COLOURS = ListedColormap(["#eeeeee", "#c7c7c7", "#f28e2b", "#4e79a7", "#d62728"])
_RF_LEGEND = [("later cells (must stay unseen)", 0), ("earlier, beyond this depth's reach", 1),
              ("earlier and within reach, yet unseen: BLIND SPOT", 2),
              ("seen by the network", 3), ("cell being predicted", 4)]


def causal_receptive_field(model: torch.nn.Module, shape: tuple[int, int], cell: tuple[int, int],
                           channels: int | None = None, n_probes: int = 8) -> torch.Tensor:
    """Which input cells influence a prior's output at ``cell``, measured with gradients. (h, w)

    Feeds ``n_probes`` random embedded grids, back-propagates the sum of the logits at ``cell`` and
    returns the gradient magnitude at every input position, summed over probes and channels: 0
    exactly where the output is blind to the input (several probes, so that one unlucky input
    with all ReLUs off cannot hide a connection).

    Args:
        model: a prior with ``forward_embedded`` or any module (B, C, h, w) -> (B, K, h, w).
        shape: (h, w) of the probe grid.
        cell: the output cell.
        channels: input channels (default: the model's embedding size).
        n_probes: random inputs.
    """
    h, w = shape
    if channels is None:
        channels = model.embed.embedding_dim
    x = torch.randn(n_probes, channels, h, w, requires_grad=True)
    fwd = model.forward_embedded if hasattr(model, "forward_embedded") else model
    fwd(x)[:, :, cell[0], cell[1]].sum().backward()
    return x.grad.abs().sum((0, 1))  # (h, w)


def receptive_field_map(model, shape, cell, reach: int, channels=None) -> np.ndarray:
    """Label each input cell, from gradients: 0 later, 1 earlier but farther than ``reach``
    rows/columns, 2 earlier and within reach but unseen (blind spot), 3 seen, 4 the cell. (h, w)

    Args:
        model: a prior or a stack of masked convolutions.
        shape: (h, w) of the probe grid.
        cell: the predicted cell.
        reach: rows/columns a network of this depth could reach.
        channels: input channels (default: the model's embedding size).
    """
    seen = causal_receptive_field(model, shape, cell, channels).numpy() > 0
    h, w = shape
    rows, cols = np.mgrid[:h, :w]
    earlier = rows * w + cols < cell[0] * w + cell[1]
    near = (cell[0] - rows <= reach) & (np.abs(cols - cell[1]) <= reach)
    out = np.where(earlier, np.where(seen, 3, np.where(near, 2, 1)), 0)
    out[cell] = 4
    return out


def receptive_fields(shape=(9, 11), cell=(6, 5), n_layers: int = 4) -> Figure:
    """Which earlier cells can influence the prediction at ``cell``, measured with gradients:
    square masked convolutions (left, with a blind spot) vs the gated PixelCNN's two stacks.

    Args:
        shape: probe grid (h, w).
        cell: the predicted cell.
        n_layers: depth of both networks (3x3 kernels).
    """
    torch.manual_seed(0)
    maps = [("square masked convs (A, B, B, B)",
             receptive_field_map(plain_pixelcnn(8, n_layers), shape, cell, n_layers, 8)),
            ("gated PixelCNN: vertical + horizontal stacks",
             receptive_field_map(GatedPixelCNN(8, 8, n_layers, 3, 3), shape, cell, n_layers))]
    fig = Figure(figsize=(10, 5.2))
    axes = fig.subplots(1, 2)
    for ax, (title, m) in zip(axes, maps, strict=True):
        ax.imshow(m, cmap=_RF_COLOURS, vmin=0, vmax=4)
        ax.set_xticks(np.arange(-0.5, shape[1]), minor=True)
        ax.set_yticks(np.arange(-0.5, shape[0]), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.5)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(f"{title}\n{n_layers} layers: {int((m == 2).sum())} blind-spot cells, "
                     f"{int((m == 3).sum())} seen", fontsize=10)
    fig.legend(handles=[Patch(color=_RF_COLOURS(v), label=lab) for lab, v in _RF_LEGEND],
               loc="lower center", ncol=2, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


def prior_training(history: dict, metrics: dict | None = None) -> Figure:
    """Training NLL (every few steps) and validation NLL (every epoch) in bits per latent cell,
    the unigram baseline dashed, the best checkpoint's test NLL as a star.

    Args:
        history: ``{"train": [{"step", "bits"}], "val": [{"step", "val_bits"}]}``.
        metrics: the prior's ``metrics.json`` (optional).
    """
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    tr, va = history["train"], history["val"]
    ax.plot([h["step"] for h in tr], [h["bits"] for h in tr], lw=1, label="train (running mean)")
    ax.plot([h["step"] for h in va], [h["val_bits"] for h in va], "o-", label="validation")
    if metrics:
        ax.axhline(metrics["unigram_test"], ls="--", c="tab:red", lw=1)
        ax.text(0.01, metrics["unigram_test"], "unigram baseline (code histogram), test",
                transform=ax.get_yaxis_transform(), va="bottom", fontsize=8, color="tab:red")
        best = min(va, key=lambda h: h["val_bits"])
        ax.plot([best["step"]], [metrics["test_bits"]], "*", ms=12, c="tab:green",
                label=f"test (best checkpoint): {metrics['test_bits']:.3f}")
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("NLL (bits per latent cell)")
    ax.set_title("Prior: negative log-likelihood of code grids")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def nll_bars(metrics: dict) -> Figure:
    """Test NLL of the prior against the uniform and unigram baselines (bits per latent cell).

    Args:
        metrics: the prior's ``metrics.json``.
    """
    names = ["uniform\n(log2 K)", "unigram\n(train histogram)",
             f"{metrics.get('prior_kind', 'prior')}\nprior"]
    vals = [metrics["uniform"], metrics["unigram_test"], metrics["test_bits"]]
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    bars = ax.bar(names, vals, color=["#bbbbbb", "#f28e2b", "#4e79a7"])
    for b, v in zip(bars, vals, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom")
    ax.set_ylabel("test NLL (bits per latent cell)")
    ax.set_title("How many bits does each code cost? (lower is better)")
    ax.set_ylim(0, max(vals) * 1.15)
    fig.tight_layout()
    return fig


class Sampler(W.VBox):
    """The live sampler (ipywidgets 8): a **temperature** slider, a **slice position** choice (for
    a conditioned prior), a **seed** box and a **sample** button over an image of the samples.

    Moving a control draws at once with the new setting (the same seed, so only that setting
    changes the picture); "sample" moves to the next seed and draws new slices. Every control has
    a plain-text ``description`` (and the view the ``_dom_classes`` name
    ``vqvae-prior-sampler``), so a browser test can find them; :meth:`figure` is the static twin
    the executed notebook keeps.

    Args:
        prior: a trained prior (any kind).
        vqvae: the VQ-VAE that decodes its codes.
        n: slices per press.
        temperature: initial temperature.
        seed: initial seed.
        device: where to sample.
        draw_now: draw once when created (set False in tests that only check the controls).
    """

    def __init__(self, prior, vqvae, n: int = 4, temperature: float = 1.0, seed: int = 0,
                 device="cpu", draw_now: bool = True):
        self.prior, self.vqvae, self.n, self.device = prior, vqvae, n, device
        self.temperature = W.FloatSlider(value=temperature, min=0.3, max=1.5, step=0.05,
                                         description="temperature", continuous_update=False,
                                         readout_format=".2f",
                                         style={"description_width": "initial"})
        # the slice-position classes' names, bottom of the head first
        self.names = (["lowest quarter", "lower-middle", "upper-middle", "top quarter"]
                      if prior.n_classes == 4 else
                      [f"position {k + 1} of {prior.n_classes}" for k in range(prior.n_classes)])
        self.position = W.Dropdown(
            options=[("all positions (one each)", -1)] + [(s, k) for k, s in enumerate(self.names)],
            value=-1, description="slice position", style={"description_width": "initial"},
            disabled=not prior.n_classes)
        self.seed = W.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed",
                                     layout=W.Layout(width="180px"))
        self.button = W.Button(description="sample", button_style="primary", icon="random",
                               tooltip="draw new slices from the prior")
        self.status = W.HTML(value="")
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%", height="auto"))
        self.button.on_click(self.next_seed)
        for control in (self.temperature, self.position, self.seed):
            control.observe(self.draw, names="value")
        controls = [self.temperature] + ([self.position] if prior.n_classes else []) + \
                   [self.seed, self.button]
        super().__init__([W.HBox(controls), self.status, self.image])
        self.add_class("vqvae-prior-sampler")
        self.last = None
        if draw_now:
            self.draw()

    def labels(self) -> torch.Tensor | None:
        """The slice-position classes of the next draw (None for an unconditional prior)."""
        if self.prior.n_classes and self.position.value >= 0:
            return torch.full((self.n,), int(self.position.value))
        return default_labels(self.prior, self.n)

    def figure(self) -> Figure:
        """The static twin of the current view: a Figure of the last draw."""
        labels = self.last["labels"]
        titles = None if labels is None else [self.names[int(y)] for y in labels]
        return image_grid(self.last["images"], ncol=min(self.n, 8), titles=titles,
                          suptitle=f"sampler: temperature {self.temperature.value:g}, "
                                   f"seed {self.seed.value}")

    def next_seed(self, *_):
        """The "sample" button: the next seed, which draws new slices."""
        self.seed.value = self.seed.value + 1 if self.seed.value < self.seed.max else 0

    def draw(self, *_):
        """Sample, decode and show; errors appear in the status line, the controls stay alive."""
        self.button.disabled = True
        self.status.value = "sampling ..."
        t0 = time.perf_counter()
        try:
            self.last = generate(self.prior, self.vqvae, self.n, self.temperature.value,
                                 labels=self.labels(), seed=self.seed.value, device=self.device)
            self.image.value = figure_png(self.figure())
            self.status.value = (f"{self.n} slices in {time.perf_counter() - t0:.1f} s "
                                 f"(temperature {self.temperature.value:.2f}, "
                                 f"seed {self.seed.value})")
        except Exception as err:  # show the problem in place
            self.status.value = f"<span style='color:#c00'>{type(err).__name__}: {err}</span>"
        finally:
            self.button.disabled = False

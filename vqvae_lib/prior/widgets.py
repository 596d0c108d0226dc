"""The live sampler of notebook 06 (ipywidgets 8): draw new slices from the prior on demand.

Controls: a **temperature** slider, a **slice position** choice (only for a prior conditioned on
slice position), a **seed** box and a **sample** button. Pressing the button samples a few code
grids, decodes them and shows :func:`vqvae_lib.prior.figures.sampler_twin` as a PNG (the
figure the executed notebook keeps as the static twin). Four 32x32 grids take a few seconds on a
CPU. Every control has a plain-text ``description`` (and the view a ``_dom_classes`` name,
``vqvae-prior-sampler``), so a browser test can find them.
"""

from __future__ import annotations

import time

import ipywidgets as W
import torch

from ..viz import figure_png
from . import figures as P
from .sample import generate

__all__ = ["Sampler", "position_names"]


def position_names(n_classes: int) -> list[str]:
    """Readable names of the slice-position classes, bottom of the head first.

    Args:
        n_classes: number of classes of a conditioned prior.
    """
    if n_classes == 4:
        return ["lowest quarter", "lower-middle", "upper-middle", "top quarter"]
    return [f"position {k + 1} of {n_classes}" for k in range(n_classes)]


class Sampler(W.VBox):
    """Temperature, slice position, seed and a "sample" button over an image of the samples.

    Moving a control draws at once with the new setting (the same seed, so only that setting
    changes the picture); "sample" moves to the next seed and draws new slices.

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
                                         readout_format=".2f")
        self.names = position_names(prior.n_classes) if prior.n_classes else []
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
        if not self.prior.n_classes:
            return None
        if self.position.value < 0:
            return torch.arange(self.n) % self.prior.n_classes
        return torch.full((self.n,), int(self.position.value))

    def figure(self):
        """The static twin of the current view (a Figure of the last draw)."""
        labels = self.last["labels"]
        return P.sampler_twin(self.last["images"], labels, self.temperature.value, self.seed.value,
                              self.names or None)

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
                                 f"(temperature {self.temperature.value:.2f}, seed {self.seed.value})")
        except Exception as err:  # show the problem in place
            self.status.value = f"<span style='color:#c00'>{type(err).__name__}: {err}</span>"
        finally:
            self.button.disabled = False

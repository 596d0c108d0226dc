"""Figures and small computations for notebook 02 (building the model).

* :func:`layer_table` / :func:`plot_architecture` -- the real network, traced on a real batch;
* :func:`plot_receptive_field` -- which input pixels one latent cell sees (gradient vs formula);
* :func:`plot_code_walk` -- slices, their code grids and what the decoder makes of them;
* :func:`bit_budget`, :func:`plot_bit_budget` -- how many bits a code grid holds per preset.

Every plotting function returns a ``Figure`` and saves nothing; the notebook calls
``viz.show(fig, run_dir, "02_name")``. The 2-D toy (VQ, straight-through, FSQ) is in ``toy.py``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from ..config import get_config
from ..metrics import bits_per_pixel
from .vqvae import VQVAE, ResidualStack, receptive_field

__all__ = ["layer_table", "format_layer_table", "plot_architecture", "plot_receptive_field",
           "bit_budget", "bit_budget_table", "format_bit_budget", "plot_bit_budget",
           "pick_slices", "plot_code_walk", "parameter_summary"]

ENC, QUANT, DEC = "#4C72B0", "#DD8452", "#55A868"


def _name(m: torch.nn.Module) -> str:
    t = type(m).__name__
    if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
        k, s = m.kernel_size[0], m.stride[0]
        return f"{'ConvT' if t == 'ConvTranspose2d' else 'Conv'} {k}x{k}" + (f"/{s}" if s > 1 else "")
    if isinstance(m, ResidualStack):
        return f"{len(m)} res. block{'s' * (len(m) > 1)}"
    return {"BatchNorm2d": "BN", "GroupNorm": "GN", "Identity": ""}.get(t, t)


# ---- the network, traced ------------------------------------------------------------------
@torch.no_grad()
def layer_table(model: VQVAE, x: torch.Tensor) -> list[dict]:
    """Run ``x`` (B, 1, H, W) through the model and record every top-level stage:
    ``{"part", "layer", "shape", "params"}``. Conv/ConvT/residual stacks open a new stage;
    the norm and activation that follow are folded into its name (e.g. "Conv 4x4/2 + BN + ReLU")."""
    was_training = model.training
    model.eval()
    rows = [dict(part="input", layer="image", shape=tuple(x.shape), params=0)]

    def walk(seq, part, h):
        for m in seq:
            h = m(h)
            name, params = _name(m), sum(p.numel() for p in m.parameters())
            opens = isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, ResidualStack))
            if opens or rows[-1]["part"] != part:
                rows.append(dict(part=part, layer=name, shape=tuple(h.shape), params=params))
            else:
                rows[-1]["layer"] += f" + {name}" if name else ""
                rows[-1].update(shape=tuple(h.shape), params=rows[-1]["params"] + params)
        return h

    z_e = walk(model.encoder, "encoder", model.to_model_range(x))
    q = model.quantizer(z_e)
    k, d = model.quantizer.codebook.shape
    rows.append(dict(part="quantizer", layer=f"nearest code + (K={k})", shape=tuple(q.codes.shape),
                     params=sum(p.numel() for p in model.quantizer.parameters())))
    rows.append(dict(part="quantizer", layer="lookup + code vectors", shape=tuple(q.quantized.shape), params=0))
    walk(model.decoder, "decoder", q.quantized)
    model.train(was_training)
    return rows


def format_layer_table(rows: list[dict]) -> str:
    lines = [f"{'part':<10} {'layer':<34} {'output shape':<22} {'params':>10}"]
    for r in rows:
        lines.append(f"{r['part']:<10} {r['layer']:<34} {str(r['shape']):<22} {r['params']:>10,}")
    return "\n".join(lines)


def plot_architecture(model: VQVAE, x: torch.Tensor) -> Figure:
    """One box per stage: height ~ spatial size, width ~ log2(channels), shapes written on top."""
    rows = layer_table(model, x[:1])
    colors = {"input": "#999999", "encoder": ENC, "quantizer": QUANT, "decoder": DEC}
    side0 = rows[0]["shape"][-1]
    fig = Figure(figsize=(max(12, 1.35 * len(rows)), 4.2))
    ax = fig.subplots()
    xpos = 0.0
    for i, r in enumerate(rows):
        shape = r["shape"]
        chans = shape[1] if len(shape) == 4 else 1
        side = shape[-1]
        h = 0.6 + 2.4 * np.sqrt(side / side0)
        w = 0.25 + 0.12 * np.log2(max(chans, 1))
        ax.add_patch(FancyBboxPatch((xpos, -h / 2), w, h, boxstyle="round,pad=0.02",
                                    fc=colors[r["part"]], ec="black", alpha=0.85))
        dims = "x".join(str(s) for s in shape[1:])
        ax.text(xpos + w / 2, h / 2 + 0.15, dims, ha="center", va="bottom", fontsize=8)
        ax.text(xpos + w / 2, -h / 2 - 0.15, r["layer"].replace(" + ", "\n+ "), ha="center",
                va="top", fontsize=7.5, rotation=0)
        if r["layer"].startswith("nearest code"):                  # codebook icon above the codes
            k, d = model.quantizer.codebook.shape
            ax.add_patch(Rectangle((xpos - 0.1, 2.2), w + 0.2, 0.5, fc="white", ec=QUANT, hatch="///"))
            ax.text(xpos + w / 2, 2.85, f"codebook {k} x {d}", ha="center", fontsize=8, color=QUANT)
        if i:
            ax.annotate("", (xpos, 0), (xpos - 0.45, 0), arrowprops=dict(arrowstyle="->", lw=1))
        xpos += w + 0.55
    for part, c in (("encoder", ENC), ("quantizer", QUANT), ("decoder", DEC)):
        ax.plot([], [], "s", color=c, ms=10, label=part)
    ax.legend(loc="upper left", ncol=3, frameon=False)
    ax.set_xlim(-0.3, xpos)
    ax.set_ylim(-3.1, 3.4)
    ax.axis("off")
    cfg = model.cfg
    ax.set_title(f"VQ-VAE, preset '{cfg.preset}': {cfg.image_size}x{cfg.image_size} image -> "
                 f"{cfg.latent_size}x{cfg.latent_size} codes from K={cfg.codebook_size} "
                 f"-> image   ({model.num_parameters():,} trainable parameters)")
    return fig


def plot_receptive_field(model: VQVAE, image: torch.Tensor, cell: tuple[int, int] | None = None) -> Figure:
    """Gradient of one latent cell's encoder output w.r.t. the input pixels, with the analytic
    receptive-field box. ``image`` (1, H, W) in [0, 1]."""
    was_training = model.training
    model.eval()
    size, stride, offset = receptive_field(model)
    x = image[None].clone().requires_grad_(True)                     # (1, 1, H, W)
    z_e = model.encode_continuous(x)                                 # (1, D, h, w)
    hl = z_e.shape[-1]
    i, j = cell if cell is not None else (hl // 2, hl // 2)
    z_e[0, :, i, j].pow(2).sum().backward()
    model.train(was_training)
    grad = x.grad[0, 0].abs().numpy()
    img = image[0].numpy()
    lo_r, lo_c = i * stride - offset, j * stride - offset
    fig = Figure(figsize=(10, 5))
    axes = fig.subplots(1, 2)
    axes[0].imshow(img, cmap="gray", vmin=0, vmax=1)
    for t in range(0, img.shape[0] + 1, stride):                     # the latent grid
        axes[0].axhline(t - 0.5, color="w", lw=0.3, alpha=0.4)
        axes[0].axvline(t - 0.5, color="w", lw=0.3, alpha=0.4)
    axes[0].add_patch(Rectangle((j * stride - 0.5, i * stride - 0.5), stride, stride,
                                fc="red", ec="red"))
    axes[0].set_title(f"latent cell ({i}, {j}) covers {stride}x{stride} pixels")
    axes[1].imshow(img, cmap="gray", vmin=0, vmax=1)
    shown = np.ma.masked_where(grad == 0, np.log10(grad + 1e-12))
    im = axes[1].imshow(shown, cmap="magma", alpha=0.8)
    fig.colorbar(im, ax=axes[1], fraction=0.046, label="log10 |d z_e(cell) / d pixel|")
    axes[1].set_title(f"but sees {size}x{size} pixels (its receptive field)")
    for ax in axes:
        ax.add_patch(Rectangle((lo_c - 0.5, lo_r - 0.5), size, size, fill=False, ec="cyan", lw=1.5))
        ax.axis("off")
    return fig


# ---- bits -------------------------------------------------------------------------------------
def bit_budget(cfg, label: str | None = None) -> dict:
    """Bits in one code grid (h*w*log2 K) vs the 8-bit image it replaces."""
    h = cfg.latent_size
    code_bits = h * h * np.log2(cfg.codebook_size)
    pixel_bits = cfg.image_size ** 2 * 8
    return dict(preset=label or cfg.preset, image=f"{cfg.image_size}x{cfg.image_size}",
                grid=f"{h}x{h}", K=cfg.codebook_size, bits_per_image=int(round(code_bits)),
                bits_per_pixel=bits_per_pixel(h, h, cfg.codebook_size, cfg.image_size, cfg.image_size),
                compression=pixel_bits / code_bits)


def bit_budget_table(presets=("smoke", "cpu", "gpu", "reference"), variants=None) -> list[dict]:
    """One row per preset, plus ``variants``: ``{label: config}`` what-ifs."""
    rows = [bit_budget(get_config(p)) for p in presets]
    return rows + [bit_budget(cfg, label) for label, cfg in (variants or {}).items()]


def format_bit_budget(rows: list[dict]) -> str:
    lines = [f"{'preset':<14} {'image':>8} {'codes':>6} {'K':>5} {'bits/image':>11} "
             f"{'bits/pixel':>10} {'vs 8-bit':>9}"]
    for r in rows:
        lines.append(f"{r['preset']:<14} {r['image']:>8} {r['grid']:>6} {r['K']:>5} "
                     f"{r['bits_per_image']:>11,} {r['bits_per_pixel']:>10.3f} {r['compression']:>8.0f}x")
    return "\n".join(lines)


def plot_bit_budget(rows: list[dict]) -> Figure:
    fig = Figure(figsize=(max(11, 2.6 * len(rows)), 3.8))
    axes = fig.subplots(1, 2)
    names = [f"{r['preset']}\n{r['image']} -> {r['grid']}\nK={r['K']}" for r in rows]
    axes[0].bar(names, [r["bits_per_pixel"] for r in rows], color=QUANT)
    axes[0].axhline(8, color="k", ls="--", lw=1)
    axes[0].text(len(rows) - 0.5, 8, "8-bit pixels", ha="right", va="bottom", fontsize=8)
    axes[0].set_yscale("log")
    ticks = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8]
    axes[0].set_yticks(ticks, [str(t) for t in ticks])
    axes[0].minorticks_off()
    axes[0].set_ylim(min(0.05, 0.5 * min(r["bits_per_pixel"] for r in rows)), 12)
    axes[0].set_ylabel("bits per pixel (log scale)")
    axes[1].bar(names, [r["compression"] for r in rows], color=ENC)
    axes[1].set_ylabel("compression vs 8-bit pixels (x)")
    for ax, key, fmt in ((axes[0], "bits_per_pixel", "{:.3f}"), (axes[1], "compression", "{:.0f}x")):
        for i, r in enumerate(rows):
            ax.text(i, r[key], fmt.format(r[key]), ha="center", va="bottom", fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("Bit budget: latent grid x log2(K) bits, before any entropy coding")
    fig.tight_layout()
    return fig


# ---- one real batch -------------------------------------------------------------------------
def pick_slices(images: np.ndarray, n: int = 8, seed: int = 0) -> torch.Tensor:
    """``n`` slices (n, 1, H, W) in [0, 1] from a (N, H, W) uint8 stack, drawn among the half
    with the most brain (brightest on average) so that the examples are not empty edge slices."""
    brightness = images.reshape(len(images), -1).mean(1)
    candidates = np.flatnonzero(brightness >= np.median(brightness))
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(candidates, size=min(n, len(candidates)), replace=False))
    return torch.from_numpy(images[idx]).float().div(255).unsqueeze(1)


@torch.no_grad()
def plot_code_walk(model: VQVAE, x: torch.Tensor, n: int = 3) -> Figure:
    """For ``n`` slices: the image, its grid of codes (one colour per code index, the numbers
    written in a corner), and what the decoder makes of those codes.

    The model keeps its mode (an untrained model is best shown in training mode, where BatchNorm
    uses the batch's statistics), except the quantizer, which is put in eval mode so that the
    figure never changes the codebook."""
    was_training = model.quantizer.training
    model.quantizer.eval()
    out = model(x[:n])
    model.quantizer.train(was_training)
    k = model.cfg.codebook_size
    cmap = plt.get_cmap("nipy_spectral", k)
    fig = Figure(figsize=(10, 3.4 * n))
    axes = fig.subplots(n, 3, squeeze=False)
    for r in range(n):
        codes = out.codes[r].numpy()
        axes[r, 0].imshow(x[r, 0], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(f"slice {tuple(x.shape[-2:])}, [0, 1]", fontsize=9)
        axes[r, 1].imshow(codes, cmap=cmap, vmin=-0.5, vmax=k - 0.5, interpolation="nearest")
        axes[r, 1].set_title(f"codes {codes.shape}, {len(np.unique(codes))} distinct of K={k}",
                             fontsize=9)
        for (a, b), c in np.ndenumerate(codes[:4, :4]):      # a few of the integers
            axes[r, 1].text(b, a, str(c), ha="center", va="center", fontsize=6, color="w",
                            bbox=dict(fc="black", alpha=0.5, lw=0, pad=0.5))
        axes[r, 2].imshow(out.recon[r, 0], cmap="gray", vmin=0, vmax=1)
        axes[r, 2].set_title("decoded codes (model not trained yet)", fontsize=9)
        for ax in axes[r]:
            ax.axis("off")
    fig.tight_layout()
    return fig


def parameter_summary(presets=("smoke", "cpu", "gpu", "reference")) -> str:
    """Trainable parameters per part for each preset, as a printable table."""
    lines = [f"{'preset':<10} {'width':>6} {'K x D':>10} {'quantizer':>9} {'encoder':>11} "
             f"{'codebook':>9} {'decoder':>11} {'total':>11}"]
    for p in presets:
        cfg = get_config(p)
        t = VQVAE(cfg).parameter_table()
        lines.append(f"{p:<10} {cfg.hidden_channels:>6} {f'{cfg.codebook_size}x{cfg.code_dim}':>10} "
                     f"{cfg.quantizer:>9} {t['encoder']:>11,} {t['quantizer']:>9,} "
                     f"{t['decoder']:>11,} {sum(t.values()):>11,}")
    return "\n".join(lines)

"""A renderer that sees its neighbours: word-conditioned masked code prediction against ``matched``.

The word ceiling (``word_ceiling.py``) says the patch-word prior loses ventricles and the grey
ribbon when a word becomes codes: ``matched`` pastes one real patch per word, and neighbouring
patches come from different slices. This prototype replaces that step by a small network that
fills the 32x32 code grid *given the word grid and the codes already placed*, trained as a masked
code model (MaskGIT, Chang et al. 2022): hide a random share of the cells (cosine schedule), predict
them from the words (their centroid code vectors) and the visible codes. Its logits start at the
prior's count table ``log p(code | word, position)`` and learn a correction, so step 0 renders as
well as the table does. Sampling fills the grid in ``steps`` rounds, keeping the most confident
cells each round (confidence plus annealed Gumbel noise, as in MaskGIT) or a random order.

On the trained prior of a finished ``make run-all`` (its words, its VQ-VAE), for each seed the same
word grids are rendered by ``matched`` and by the renderer, decoded and scored against the real
test slices; the validation slices' own words give the ceiling (CSF agreement with the
reconstructions, as in ``word_ceiling.py``). Not part of the library: a measured prototype.
Writes ``benchmarks/masked_renderer.json`` and a contact sheet ``<run-dir>/masked_renderer.png``.

    python benchmarks/masked_renderer.py --run-dir runs/cpu [--minutes 3] [--seeds 0 1 2] [-n 64]
"""

from __future__ import annotations

import math
import time

import matplotlib
import torch
import torch.nn as nn
import torch.nn.functional as F
from render_compare import arguments, mean_of, row, trained_run, write_report
from tqdm.auto import tqdm
from word_ceiling import csf_agreement

from vqvae_lib.model.inference import decode
from vqvae_lib.prior.codes import split_codes
from vqvae_lib.prior.masked import unmasked_counts
from vqvae_lib.prior.sample import default_labels
from vqvae_lib.prior.scoring import load_real, score_images
from vqvae_lib.prior.store import load_prior

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


class MaskedRenderer(nn.Module):
    """Codes of the hidden cells from the word grid and the visible codes.

    Args:
        prior: a prepared patch-word prior (its centroids, count table and code vectors are
            read, not trained).
        channels: width of the convolutions.
        dilations: one residual 3x3 convolution per entry (dilated: a cell sees its neighbours'
            patches, not only its own).
    """

    def __init__(self, prior, channels: int = 64, dilations=(1, 2, 4, 8, 1, 2)):
        super().__init__()
        self.prior = [prior]                      # a list: not a submodule, not trained here
        D = prior.code_vectors.shape[1]
        p = prior.patch
        self.inp = nn.Conv2d(2 * D + 1, channels, 1)
        self.position = nn.Parameter(torch.zeros(channels, p, p))   # where in its patch a cell is
        self.body = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=d, dilation=d)
                                  for d in dilations)
        self.out = nn.Conv2d(channels, D, 1)
        nn.init.zeros_(self.out.weight)           # start exactly at the count table
        nn.init.zeros_(self.out.bias)
        self.bias = nn.Parameter(torch.zeros(len(prior.code_vectors)))

    def table_logits(self, words: torch.Tensor) -> torch.Tensor:
        """(B, h/p, w/p) words -> (B, K, h, w) log p(code | word, position) from the counts."""
        return self.prior[0].table_log_probs(words)

    def forward(self, words: torch.Tensor, codes: torch.Tensor, hidden: torch.Tensor
                ) -> torch.Tensor:
        """Logits (B, K, h, w) of every cell; ``hidden`` (B, h, w) True where the code is unknown
        (its value in ``codes`` is ignored)."""
        pr = self.prior[0]
        visible = F.embedding(codes, pr.code_vectors).permute(0, 3, 1, 2) * (~hidden)[:, None]
        x = self.inp(torch.cat([pr.layout_vectors(words), visible, hidden[:, None].float()], 1))
        reps = (pr.word_size[0], pr.word_size[1])
        x = x + self.position.repeat(1, *reps)
        for conv in self.body:
            x = x + F.gelu(conv(x))
        query = self.out(x)                                                  # (B, D, h, w)
        correction = torch.einsum("bdhw,kd->bkhw", query, pr.code_vectors) + self.bias[:, None, None]
        return self.table_logits(words) + correction


def random_hidden(n: int, shape, generator=None) -> torch.Tensor:
    """(n, h, w) masks hiding a share cos(u pi/2), u ~ U(0, 1), of each grid's cells."""
    share = torch.cos(torch.rand(n, generator=generator) * math.pi / 2)
    return torch.rand(n, *shape, generator=generator) < share[:, None, None]


def masked_bits(net, words, codes, hidden) -> torch.Tensor:
    """Mean bits per hidden cell."""
    ce = F.cross_entropy(net(words, codes, hidden), codes, reduction="none")
    return (ce * hidden).sum() / hidden.sum().clamp_min(1) / math.log(2)


def train_renderer(net, words, codes, val_words, val_codes, minutes: float, batch: int = 16,
                   lr: float = 2e-3) -> list[dict]:
    """Train ``net`` for ``minutes`` (warm-up, cosine to 0); returns the validation curve."""
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    val_hidden = random_hidden(len(val_codes), val_codes.shape[1:], torch.Generator().manual_seed(1))
    curve, step, t0 = [], 0, time.perf_counter()
    bar = tqdm(total=int(minutes * 60), desc="renderer (seconds)", unit="s")
    while (elapsed := time.perf_counter() - t0) < minutes * 60:
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 20) * 0.5 * (1 + math.cos(math.pi * elapsed / (minutes * 60)))
        idx = torch.randint(0, len(codes), (batch,))
        loss = masked_bits(net, words[idx], codes[idx], random_hidden(batch, codes.shape[1:]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        bar.update(int(time.perf_counter() - t0) - bar.n)
        if step % 100 == 0:
            with torch.no_grad():
                curve.append({"step": step, "seconds": round(time.perf_counter() - t0, 1),
                              "val_bits": round(float(masked_bits(net, val_words, val_codes,
                                                                  val_hidden)), 4)})
            bar.set_postfix(val_bits=curve[-1]["val_bits"])
    bar.close()
    with torch.no_grad():
        curve.append({"step": step, "seconds": round(time.perf_counter() - t0, 1),
                      "val_bits": round(float(masked_bits(net, val_words, val_codes, val_hidden)), 4),
                      "table_val_bits": round(float(masked_bits(
                          lambda w, c, h: net.table_logits(w), val_words, val_codes, val_hidden)), 4)})
    return curve


@torch.no_grad()
def draw(net, words: torch.Tensor, generator: torch.Generator, steps: int = 10,
         temperature: float = 1.0, noise: float | None = 4.5) -> torch.Tensor:
    """Fill the code grids of ``words`` in ``steps`` rounds (MaskGIT decoding). Each round draws
    every hidden cell and keeps the most confident draws (log-probability plus Gumbel noise scaled
    by ``noise`` and annealed to 0), so that the share still hidden follows cos(pi/2 t/steps)
    (:func:`~vqvae_lib.prior.masked.unmasked_counts`, as in the masked prior);
    ``noise=None`` keeps a random choice instead (random order)."""
    B, (h, w) = len(words), net.prior[0].grid_size
    codes = torch.zeros(B, h, w, dtype=torch.long)
    hidden = torch.ones(B, h, w, dtype=torch.bool)
    for t, visible in enumerate(unmasked_counts(h * w, steps)):   # the masked prior's schedule
        probs = F.softmax(net(words, codes, hidden) / temperature, 1).permute(0, 2, 3, 1)
        drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator)
        drawn = drawn.view(B, h, w)
        codes = torch.where(hidden, drawn, codes)
        left = h * w - visible
        if left == 0:
            break
        gumbel = -torch.log(-torch.log(torch.rand(B, h, w, generator=generator).clamp(1e-9, 1)))
        if noise is None:
            score = gumbel
        else:
            score = probs.gather(-1, drawn[..., None])[..., 0].log() + noise * (1 - (t + 1) / steps) * gumbel
        score = score.masked_fill(~hidden, float("inf")).flatten(1)
        cut = score.sort(1).values[:, left - 1:left]                 # the `left` least confident
        hidden = hidden & (score <= cut).view(B, h, w)
    return codes


def contact_sheet(rows: dict, path) -> None:
    """Eight images per row, one row per named set."""
    fig, axes = plt.subplots(len(rows), 8, figsize=(16, 2.2 * len(rows)))
    for r, (name, images) in enumerate(rows.items()):
        for c in range(8):
            axes[r, c].imshow(images[c, 0], cmap="gray", vmin=0, vmax=1)
            axes[r, c].axis("off")
        axes[r, 0].set_title(name, fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    args = arguments(__doc__, "masked_renderer.json",
                     extra=lambda p: p.add_argument("--minutes", type=float, default=3.0))
    run, checkpoint, vqvae, cfg = trained_run(args.run_dir)
    prior, _ = load_prior(run / "prior" / "best.pt")
    if not hasattr(prior, "render"):
        raise SystemExit(f"{run}/prior/best.pt is not a patch-word prior (prior_kind='words')")
    torch.manual_seed(0)
    codes = {s: split_codes(vqvae, checkpoint, cfg, s, args.data_dir, run, "cpu")["codes"].long()
             for s in ("train", "validate")}
    train = torch.cat([codes["train"], split_codes(vqvae, checkpoint, cfg, "train", args.data_dir,
                                                   run, "cpu", mirror=True)["codes"].long()])
    words = torch.cat([prior.words_of(c) for c in train.split(256)])
    val_words = prior.words_of(codes["validate"])
    net = MaskedRenderer(prior)
    curve = train_renderer(net, words, train, val_words, codes["validate"], args.minutes)
    net.eval()
    real = load_real(args.data_dir, cfg.image_size, run, verbose=False)

    renderers = {"matched": None, "masked, confidence order": 4.5, "masked, random order": None}
    # the ceiling: the validation slices' own words, rendered
    recon = decode(vqvae, codes["validate"])
    reference = real.fractions(recon)
    ceiling, sheet = [], {"validation (reconstructed)": recon[:8]}
    for name, noise in renderers.items():
        g = torch.Generator().manual_seed(0)
        c = prior.render_words(val_words, g) if name == "matched" else \
            draw(net, val_words, g, noise=noise)
        images = decode(vqvae, c)
        ceiling.append({"render": name, **csf_agreement(real.fractions(images), reference)})
        sheet[f"validation words: {name}"] = images[:8]
    # samples: the same word grids per seed, rendered by each rule
    rows = []
    for seed in tqdm(args.seeds, desc="seeds"):
        g = torch.Generator().manual_seed(seed)
        w, matched = prior.sample_levels(args.n, y=default_labels(prior, args.n), generator=g)
        for name, noise in renderers.items():
            t0 = time.perf_counter()
            c = matched if name == "matched" else draw(net, w, g, noise=noise)
            images = decode(vqvae, c)
            rows.append({"render": name, "seed": seed,
                         "render_seconds": round(time.perf_counter() - t0, 1),
                         **row(score_images(images, real, n=args.n))})
            if seed == args.seeds[0]:
                sheet[f"samples: {name}"] = images[:8]
    contact_sheet(sheet, run / "masked_renderer.png")
    means = {name: mean_of([r for r in rows if r["render"] == name]) for name in renderers}
    write_report(args, __doc__, run, rows, means, minutes=args.minutes,
                 parameters=sum(p.numel() for p in net.parameters()), training_curve=curve,
                 ceiling=ceiling, figure=str(run / "masked_renderer.png"))


if __name__ == "__main__":
    main()

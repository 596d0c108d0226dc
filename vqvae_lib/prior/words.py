"""A prior over *patch words* (``prior_kind="words"``): cut the code grid into patches, name every
patch by the nearest of a few hundred "words", model the short grid of words with a causal
transformer, and turn each drawn word back into a patch of codes.

Why: every prior that draws the 32x32 grid one *code* at a time (``pixelcnn``, ``transformer``,
``hierarchical``) spends its few CPU minutes on the shades that tell near-synonym codes apart, and
what it draws is texture: speckle inside a head outline, no ventricles (benchmarks/README.md,
rounds 1 and 2). A 4x4 patch of codes is a 16x16-pixel piece of anatomy -- a stretch of cortex,
the corner of a ventricle, the midline. Drawing whole pieces moves the prior's work from texture to
**layout**, the thing it got wrong, and shortens the sequence from 1024 cells to 64, so that a
transformer (every word attends to every earlier one: global context) trains for many epochs in
the same minutes. It is the idea of VQ-VAE-2's top level (Razavi et al. 2019) and of the
"visual words" of bag-of-features models, with a fixed, k-means vocabulary instead of a second
learned encoder.

1. **Words.** A patch is described by its ``patch x patch`` code *vectors* (the VQ-VAE's codebook,
   so near-synonym codes give near-equal descriptions), concatenated; k-means on the training
   patches gives ``words`` centroids. ``words_of`` names each patch by its nearest centroid.
2. **Word prior.** A causal transformer (:class:`~vqvae_lib.prior.transformer.CodeTransformer`)
   over the ``(h / patch) x (w / patch)`` word grid in raster order, optionally conditioned on
   slice position.
3. **Rendering** a word back into codes, a whole patch at a time, by one of the rules of
   :mod:`vqvae_lib.prior.render` (default ``"matched"``: the real patch with this word cut from
   the training slice whose contrast is nearest to the sample's anchor).

Likelihood: ``words_of`` is a function of the code grid, so
``bits(words) + bits(codes | words)`` is the length of a real two-part code for the grid (send the
words, then each code given its word and position, from the training counts with add-``alpha``
smoothing). :meth:`PatchWordPrior.nll_bits` reports that sum per code cell, comparable with the
other priors. It is a poor *compressor* -- the second part knows nothing of neighbouring codes --
and says so honestly; the point of this prior is its samples. Only the transformer is trained
(the vocabulary and the count table are fixed by :meth:`PatchWordPrior.prepare`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..model.quantizers import kmeans, nearest_codes
from .draw import CodePrior, nll_bits, start_at_unigram
from .render import RENDER_RULES, head_contrast, render_words
from .transformer import CodeTransformer

__all__ = ["PatchWordPrior", "RENDER_RULES"]

class PatchWordPrior(CodePrior):
    """Transformer over a grid of k-means patch words, rendered back into codes; see the module
    docstring.

    Args:
        num_codes: K, codes of the VQ-VAE.
        code_dim: D, length of a code vector.
        words: size of the vocabulary (k-means centroids).
        patch: a word covers ``patch x patch`` code cells.
        channels: width of the transformer.
        n_layers: transformer blocks.
        heads: attention heads.
        n_classes: slice-position classes (0 = unconditional).
        grid_size: (h, w) of the code grid; both divisible by ``patch``.
        render: one of :data:`RENDER_RULES`; may be changed after training.
        exemplars: training patches kept per word for ``render="matched"`` and ``"exemplar"``.
        anchors: training-slice contrasts kept for ``render="matched"`` (each sample draws one).
        top_p: nucleus sampling of the words (``draw_codes``): the probability mass kept at each
            draw; 1 draws from the full distribution. May be changed after training.
        alpha: add-alpha smoothing of the code counts behind ``bits(codes | words)``.
        seed: seed of the k-means.
    """

    def __init__(self, num_codes: int, code_dim: int, words: int = 1024, patch: int = 4,
                 channels: int = 128, n_layers: int = 4, heads: int = 4, n_classes: int = 0,
                 grid_size: Sequence[int] = (32, 32), render: str = "matched",
                 exemplars: int = 32, anchors: int = 256, top_p: float = 1.0, alpha: float = 0.01,
                 seed: int = 0):
        super().__init__()
        h, w = grid_size
        if h % patch or w % patch:
            raise ValueError(f"the code grid {h}x{w} is not divisible by the patch size {patch}")
        if render not in RENDER_RULES:
            raise ValueError(f"render={render!r}: choose one of {RENDER_RULES}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p={top_p} must be in (0, 1]")
        self.hparams = dict(num_codes=num_codes, code_dim=code_dim, words=words, patch=patch,
                            channels=channels, n_layers=n_layers, heads=heads, n_classes=n_classes,
                            grid_size=[h, w], render=render, exemplars=exemplars,
                            anchors=anchors, top_p=top_p, alpha=alpha, seed=seed)
        self.num_codes, self.n_classes, self.patch, self.seed = num_codes, n_classes, patch, seed
        self.render, self.top_p, self.alpha = render, top_p, alpha
        self.grid_size, self.word_size = (h, w), (h // patch, w // patch)
        cells = patch * patch
        self.register_buffer("code_vectors", torch.zeros(num_codes, code_dim))   # set by build
        self.register_buffer("centroids", torch.zeros(words, cells * code_dim))  # set by prepare
        # log p(code | word, position), float16: 1024 words x 16 positions x 512 codes = 8 M numbers
        uniform = torch.full((words, cells, num_codes), -math.log(num_codes), dtype=torch.float16)
        self.register_buffer("log_table", uniform)
        # log of each float16 row's total (rounding leaves it a little off 0): subtracted on use
        self.register_buffer("log_norm", torch.zeros(words, cells))
        self.register_buffer("medoids", torch.zeros(words, cells, dtype=torch.long))
        self.register_buffer("exemplars", torch.zeros(words, exemplars, cells, dtype=torch.long))
        self.register_buffer("n_exemplars", torch.ones(words, dtype=torch.long))
        # contrast of the slice each exemplar was cut from, and of `anchors` random training slices
        self.register_buffer("exemplar_contrast",
                             torch.zeros(words, exemplars, code_dim, dtype=torch.float16))
        self.register_buffer("anchor_contrast", torch.zeros(anchors, code_dim))
        self.words = CodeTransformer(words, channels, n_layers, heads, n_classes,
                                     grid_size=self.word_size)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # priors saved before the "matched" rule carry no contrasts: they keep zeros (and the
        # render rule stored with them)
        for name in ("exemplar_contrast", "anchor_contrast"):
            state_dict.setdefault(prefix + name, getattr(self, name))
        if prefix + "log_table" in state_dict:
            state_dict.setdefault(prefix + "log_norm",
                                  state_dict[prefix + "log_table"].float().logsumexp(-1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # -- patches and words -------------------------------------------------------------------
    def code_patches(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) codes -> (B, h/p, w/p, p*p) the codes of each patch, row by row."""
        B, h, w = codes.shape
        p = self.patch
        return codes.reshape(B, h // p, p, w // p, p).permute(0, 1, 3, 2, 4).reshape(
            B, h // p, w // p, p * p)

    def from_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`code_patches`: (B, h/p, w/p, p*p) -> (B, h, w)."""
        B, hp, wp, _ = patches.shape
        p = self.patch
        return patches.reshape(B, hp, wp, p, p).permute(0, 1, 3, 2, 4).reshape(B, hp * p, wp * p)

    def describe(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) codes -> (B, h/p, w/p, p*p*D): each patch's code vectors, concatenated."""
        return F.embedding(self.code_patches(codes), self.code_vectors).flatten(3)

    def words_of(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) codes -> (B, h/p, w/p) words (nearest centroid). Always in float32, also
        under bf16 autocast: a word must not depend on precision."""
        with torch.autocast(codes.device.type, enabled=False):
            d = self.describe(codes)
            return nearest_codes(d.reshape(-1, d.shape[-1]), self.centroids).view(d.shape[:3])

    @torch.no_grad()
    def prepare(self, train_codes: torch.Tensor, batch: int = 256, max_patches: int = 60000
                ) -> None:
        """Fix the vocabulary (k-means on at most ``max_patches`` training patches), count which
        code each word puts at each position (``log_table``), keep its real patches
        (``medoids``, ``exemplars``) with the contrast of the slices they were cut from (background
        = the codes seen in the corner cells of the training grids), keep the contrasts of
        ``anchors`` random training slices, and start the word transformer at the word histogram.
        ``code_vectors`` must be set first
        (:func:`~vqvae_lib.prior.hierarchy.code_vector_table`)."""
        if not self.code_vectors.abs().sum():
            raise RuntimeError("set prior.code_vectors (code_vector_table(vqvae)) before prepare()")
        dev = self.code_vectors.device
        chunks = [train_codes[i:i + batch].to(dev) for i in range(0, len(train_codes), batch)]
        desc = torch.cat([self.describe(c).flatten(0, 2) for c in chunks])      # (patches, pD)
        g = torch.Generator().manual_seed(self.seed)
        pick = torch.randperm(len(desc), generator=g)[:max_patches].to(dev)
        self.centroids.copy_(kmeans(desc[pick], len(self.centroids), iters=15, generator=g))
        words = torch.cat([self.words_of(c) for c in chunks])                   # (N, h/p, w/p)
        patches = torch.cat([self.code_patches(c) for c in chunks]).flatten(0, 2)  # (patches, pp)
        flat = words.reshape(-1)
        N, cells, K = self.log_table.shape
        counts = torch.zeros(N * cells * K, device=dev)
        pos = torch.arange(cells, device=dev)
        counts.index_add_(0, ((flat[:, None] * cells + pos) * K + patches).reshape(-1),
                          torch.ones(patches.numel(), device=dev))
        counts = counts.view(N, cells, K) + self.alpha
        self.log_table.copy_((counts / counts.sum(-1, keepdim=True)).log().half())
        self.log_norm.copy_(self.log_table.float().logsumexp(-1))
        # medoid: per word, the training patch nearest to its centroid (a real patch of codes)
        dist = (desc - self.centroids[flat]).pow(2).sum(1)                      # (patches,)
        best = torch.full((N,), float("inf"), device=dev).scatter_reduce(0, flat, dist, "amin")
        winner = torch.nonzero(dist <= best[flat])[:, 0]
        self.medoids.copy_(self.log_table.argmax(-1))        # unused words: their mode (uniform)
        self.medoids[flat[winner]] = patches[winner]
        # exemplars: up to M random training patches per word (shuffle, group by word, keep M)
        M = self.exemplars.shape[1]
        order = torch.randperm(len(flat), generator=g).to(dev)
        by_word, pos_in_order = flat[order].sort(stable=True)
        first = torch.searchsorted(by_word, by_word, side="left")
        rank = torch.arange(len(by_word), device=dev) - first             # rank within its word
        keep = rank < M
        chosen = order[pos_in_order[keep]]
        self.exemplars.copy_(self.medoids[:, None].expand_as(self.exemplars))
        self.exemplars[by_word[keep], rank[keep]] = patches[chosen]
        self.n_exemplars.copy_(torch.bincount(flat, minlength=N).clamp(1, M))
        # contrasts: of every training grid, then of each exemplar's grid and of random anchors
        corners = torch.cat([c[:, [0, 0, -1, -1], [0, -1, 0, -1]].reshape(-1) for c in chunks])
        background = torch.unique(corners)
        grid_contrast = torch.cat([head_contrast(c, self.code_vectors, background)
                                   for c in chunks])                                 # (grids, D)
        cells_per_grid = words.shape[1] * words.shape[2]
        self.exemplar_contrast.zero_()
        self.exemplar_contrast[by_word[keep], rank[keep]] = \
            grid_contrast[chosen // cells_per_grid].half()
        A = len(self.anchor_contrast)
        anchor = torch.randperm(len(grid_contrast), generator=g)[:A]
        anchor = anchor.repeat(-(-A // len(anchor)))[:A].to(dev)   # fewer grids than anchors
        self.anchor_contrast.copy_(grid_contrast[anchor])
        start_at_unigram(self.words, words)

    # -- likelihood --------------------------------------------------------------------------
    def code_bits(self, codes: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """Bits per code cell of ``codes`` given their ``words``, from the count table. (B,)
        (Reads one table entry per cell: the same number as :meth:`forward` + ``nll_bits``.)"""
        patches = self.code_patches(codes)                                  # (B, h/p, w/p, pp)
        pos = torch.arange(patches.shape[-1], device=codes.device)
        w = words[..., None]
        logp = self.log_table[w, pos, patches].float() - self.log_norm[w, pos]  # (B, h/p, w/p, pp)
        return -logp.flatten(1).mean(1) / math.log(2)

    def level_bits(self, codes: torch.Tensor, y: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(bits per word cell (B,), bits per code cell given the words (B,))``."""
        words = self.words_of(codes)
        return nll_bits(self.words(words, y), words), self.code_bits(codes, words)

    def nll_bits(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Bits per code cell of the two-part code: word bits / p^2 + code bits given words. (B,)"""
        word_bits, code_bits = self.level_bits(codes, y)
        return code_bits + word_bits / self.patch ** 2

    def training_loss(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The mean two-part NLL in bits per code cell, like every other prior's loss (so the
        training and validation curves share a unit). Only the word part has a gradient: the
        count table is fixed. (Adam's steps do not depend on the loss's scale, so the 1/p^2
        costs nothing.)"""
        return self.nll_bits(codes, y).mean()

    def table_log_probs(self, words: torch.Tensor) -> torch.Tensor:
        """(B, h/p, w/p) words -> (B, K, h, w) log p(code | word, position) from the count table."""
        logp = self.log_table[words].float() - self.log_norm[words][..., None]  # (B, h/p, w/p, pp, K)
        B, hp, wp, pp, K = logp.shape
        grid = self.from_patches(logp.permute(0, 4, 1, 2, 3).reshape(B * K, hp, wp, pp))
        return grid.view(B, K, *self.grid_size)

    def forward(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Code log-probabilities (B, K, h, w) given the words of ``codes`` (teacher forcing)."""
        return self.table_log_probs(self.words_of(codes))

    # -- sampling ----------------------------------------------------------------------------
    def render_words(self, words: torch.Tensor, generator: torch.Generator | None = None
                     ) -> torch.Tensor:
        """(B, h/p, w/p) words -> (B, h, w) codes by the ``render`` rule
        (:func:`vqvae_lib.prior.render.render_words`; ``generator`` draws the anchors or the
        exemplars)."""
        return self.from_patches(render_words(self, words, generator))

    def layout_vectors(self, words: torch.Tensor) -> torch.Tensor:
        """(B, h/p, w/p) words -> (B, D, h, w): every patch filled with its centroid's vectors
        (what the word *means*, before rendering; the decoder shows it blurred)."""
        B, hp, wp = words.shape
        p, D = self.patch, self.code_vectors.shape[1]
        v = self.centroids[words].view(B, hp, wp, p * p, D)
        v = self.from_patches(v.permute(0, 4, 1, 2, 3).reshape(B * D, hp, wp, p * p))
        return v.view(B, D, *self.grid_size)

    @torch.no_grad()
    def sample_levels(self, n: int, shape: tuple[int, int] | None = None,
                      temperature: float | Sequence[float] = 1.0, y: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, progress: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` word grids at ``temperature`` (nucleus ``top_p``), then render them:
        ``(words, codes)``."""
        self.check_shape(shape)
        words = self.words.sample(n, self.word_size, temperature, y, generator, progress,
                                  top_p=self.top_p)
        return words, self.render_words(words, generator)

    def sample(self, n: int, shape: tuple[int, int] | None = None,
               temperature: float | Sequence[float] = 1.0, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Draw ``n`` code grids (B, h, w), words first; same API as the other priors."""
        return self.sample_levels(n, shape, temperature, y, generator, progress)[1]

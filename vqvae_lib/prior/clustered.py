"""A prior over *merged* codes (``prior_kind="clustered"``): k-means the VQ-VAE's code vectors into
``prior_top_codes`` groups of near-synonyms, model the grid of group numbers with a gated
PixelCNN, and decode each group as its most frequent member.

Why: the cpu preset's VQ-VAE spends 512 codes on 4x4-pixel patches, and many of them are
near-synonyms -- patches that differ by a shade of grey. A prior that must tell them apart spends
its few hundred training steps on those shades, and when it draws one at random the decoder
renders a speckle: texture instead of anatomy. Merged into 64 groups, the grid keeps its layout
(notebook 06 decodes real grids through the groups to show it: the ventricles, midline and cortex
survive, fine texture does not), and the prior learns a 64-way choice per cell instead of 512.

Likelihood. Each code's probability is ``p(group) * p(code | group)``, with the second factor the
code's share of its group in the training grids (no context). ``forward`` returns these
log-probabilities for all K codes, so the NLL in bits per cell is exact for this model and
comparable with the other priors: it pays for the shades the sampler never draws.

Sampling draws the group grid at the given temperature and decodes every group as its most
frequent member: temperature 0 *within* a group, on purpose (a random shade per cell is the
speckle we set out to remove). The price: samples have no texture finer than a group.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..model.quantizers import kmeans, nearest_codes
from .draw import CodePrior, start_at_unigram
from .model import GatedPixelCNN

__all__ = ["ClusteredCodePrior"]


class ClusteredCodePrior(CodePrior):
    """A gated PixelCNN over groups of near-synonym codes; see the module docstring.

    Args:
        num_codes: K, codes of the VQ-VAE.
        code_dim: D, length of a code vector.
        groups: k-means groups of codes.
        channels: width of the PixelCNN.
        n_layers: gated layers.
        n_classes: slice-position classes (0 = unconditional).
        grid_size: (h, w) of the code grid.
        seed: seed of the k-means.
    """

    def __init__(self, num_codes: int, code_dim: int, groups: int = 64, channels: int = 64,
                 n_layers: int = 8, n_classes: int = 0, grid_size: Sequence[int] = (32, 32),
                 seed: int = 0):
        super().__init__()
        h, w = grid_size
        self.hparams = dict(num_codes=num_codes, code_dim=code_dim, groups=groups,
                            channels=channels, n_layers=n_layers, n_classes=n_classes,
                            grid_size=[h, w], seed=seed)
        self.num_codes, self.n_classes, self.seed = num_codes, n_classes, seed
        self.grid_size = (h, w)
        self.register_buffer("code_vectors", torch.zeros(num_codes, code_dim))  # set by build
        self.register_buffer("group_of", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("member_logp", torch.zeros(num_codes))    # log p(code | its group)
        self.register_buffer("representative", torch.zeros(groups, dtype=torch.long))
        self.groups = GatedPixelCNN(groups, channels, n_layers, n_classes=n_classes,
                                    grid_size=self.grid_size)

    @torch.no_grad()
    def prepare(self, train_codes: torch.Tensor, max_points: int = 200_000) -> None:
        """Group the codes by k-means on their vectors, weighted by use in the training grids;
        count each code's share of its group; start the PixelCNN at the group unigram."""
        if not self.code_vectors.abs().sum():
            raise RuntimeError("set prior.code_vectors (code_vector_table(vqvae)) before prepare()")
        g = torch.Generator().manual_seed(self.seed)
        flat = train_codes.reshape(-1).cpu()
        used = flat[torch.randperm(len(flat), generator=g)[:max_points]]
        vectors = self.code_vectors.cpu()
        centroids = kmeans(vectors[used], len(self.representative), iters=20, generator=g)
        group_of = nearest_codes(vectors, centroids)                         # (K,)
        counts = torch.bincount(flat, minlength=self.num_codes).double() + 0.5  # (K,)
        per_group = torch.zeros(len(centroids), dtype=torch.double).index_add_(0, group_of, counts)
        self.group_of.copy_(group_of)
        self.member_logp.copy_((counts / per_group[group_of]).log().float())
        best = torch.full((len(centroids),), -1.0, dtype=torch.double)
        for code in range(self.num_codes):  # the most frequent member of every group
            if counts[code] > best[group_of[code]]:
                best[group_of[code]], self.representative[group_of[code]] = counts[code], code
        start_at_unigram(self.groups, self.group_of[train_codes.cpu()])

    def forward(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities (B, K, h, w) of every code: log p(group | earlier cells) +
        log p(code | group). Causal because the group PixelCNN is."""
        group_logp = F.log_softmax(self.groups(self.group_of[codes], y).float(), dim=1)  # (B, G, h, w)
        return group_logp[:, self.group_of] + self.member_logp[None, :, None, None]

    def training_loss(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Bits per cell of the group grid (the member term has nothing to learn)."""
        return self.groups.nll_bits(self.group_of[codes], y).mean()

    @torch.no_grad()
    def sample(self, n: int, shape: tuple[int, int] | None = None,
               temperature: float | Sequence[float] = 1.0, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
        """Draw ``n`` group grids at ``temperature``; each group becomes its most frequent code."""
        groups = self.groups.sample(n, shape or self.grid_size, temperature, y, generator, progress)
        return self.representative[groups]

"""How the patch-word prior turns a drawn word back into a patch of codes (its render rules).

A word stands for many real training patches; the prior draws words, and a rule picks the codes.
Every rule writes a whole patch at once: a random code *per cell* would be speckle.

* ``"matched"`` (the default): one of the training patches that carry the word (up to
  ``exemplars`` are kept per word), the one cut from the training slice whose **contrast** is
  nearest to the sample's. Every sample first draws an *anchor*, the contrast of one random
  training slice, so that all its pieces come from slices that look alike inside the head. A
  slice's contrast is its mean code vector over the head cells (:func:`head_contrast`).
* ``"exemplar"``: one of those training patches at random -- a real piece of some training slice,
  but pieces of bright and dull subjects end up side by side (benchmarks/README.md, round 4).
* ``"mode"``: at each of the ``patch x patch`` positions, the code seen most often there under that
  word (smooth, but thin grey matter loses the vote).
* ``"medoid"``: the one training patch nearest to the word's centroid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["RENDER_RULES", "head_contrast", "render_words"]

RENDER_RULES = ("matched", "exemplar", "mode", "medoid")
"""How a word becomes codes: the real patch that carries it from the training slice of contrast
nearest to the sample's anchor, a random real patch that carries it, the most frequent code per
position, or the real patch nearest to its centroid."""


def head_contrast(codes: torch.Tensor, code_vectors: torch.Tensor, background: torch.Tensor
                  ) -> torch.Tensor:
    """(B, h, w) codes -> (B, D): each grid's mean code vector over its head cells (cells whose
    code is not in ``background``), i.e. how bright and how contrasted the slice is inside the
    head, in code space. A grid with no head cells gets zeros.

    Args:
        codes: (B, h, w) code grids.
        code_vectors: (K, D) the VQ-VAE's code vectors.
        background: 1-D tensor of the codes that count as background.
    """
    head = ~torch.isin(codes, background)                                   # (B, h, w)
    total = (F.embedding(codes, code_vectors) * head[..., None]).sum((1, 2))
    return total / head.sum((1, 2))[:, None].clamp_min(1)


def render_words(prior, words: torch.Tensor, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """(B, h/p, w/p) words -> (B, h/p, w/p, p*p) the codes of each patch, by ``prior.render``.

    Args:
        prior: a prepared :class:`~vqvae_lib.prior.words.PatchWordPrior` (its ``exemplars``,
            ``n_exemplars``, ``exemplar_contrast``, ``anchor_contrast``, ``log_table``,
            ``medoids``).
        words: (B, h/p, w/p) word grids.
        generator: draws the anchors (``matched``) or the exemplars (``exemplar``).
    """
    dev = words.device
    if prior.render == "matched":
        B, M = words.shape[0], prior.exemplars.shape[1]
        anchor = prior.anchor_contrast[torch.randint(len(prior.anchor_contrast), (B,),
                                                     generator=generator, device=dev)]  # (B, D)
        e = prior.exemplar_contrast.float()                                     # (N, M, D)
        # ||e - a||^2 up to a per-sample constant, for every word's exemplars at once
        dist = e.pow(2).sum(-1)[None] - 2 * torch.einsum("nmd,bd->bnm", e, anchor)
        dist = dist[torch.arange(B, device=dev)[:, None, None], words]      # (B, h/p, w/p, M)
        valid = torch.arange(M, device=dev) < prior.n_exemplars[words][..., None]
        return prior.exemplars[words, dist.masked_fill(~valid, float("inf")).argmin(-1)]
    if prior.render == "exemplar":
        u = torch.rand(words.shape, generator=generator, device=dev)
        return prior.exemplars[words, (u * prior.n_exemplars[words]).long()]
    table = prior.log_table.argmax(-1) if prior.render == "mode" else prior.medoids  # (N, pp)
    return table[words]

"""Vector quantizers: the step that turns continuous encoder outputs into discrete codes.

A quantizer holds a codebook of ``K`` vectors ``e_1..e_K`` in ``R^D``. Every spatial position
of the encoder output ``z_e`` (shape ``(B, D, h, w)``) is replaced by its nearest codebook
vector; the index of that vector is the *code* of the position (van den Oord, Vinyals and
Kavukcuoglu, "Neural Discrete Representation Learning", NeurIPS 2017, arXiv:1711.00937).

``argmin`` has no gradient, so two tricks make the whole thing trainable:

* the **straight-through estimator**: the decoder receives ``z_e + sg[z_q - z_e]``, which
  equals ``z_q`` in the forward pass but passes the decoder's gradient unchanged to ``z_e``;
* a way to move the codebook, either
  - by loss (:class:`VectorQuantizer`): ``||sg[z_e] - e||^2`` pulls codes to the encoder
    outputs they are assigned, and a *commitment* loss ``beta * ||z_e - sg[e]||^2`` keeps
    the encoder from drifting away from its codes; or
  - by exponential moving averages (:class:`VectorQuantizerEMA`): each code becomes the
    running mean of the vectors assigned to it, i.e. online k-means (van den Oord et al. 2017,
    appendix; Razavi, van den Oord and Vinyals, "Generating Diverse High-Fidelity Images with
    VQ-VAE-2", 2019; DeepMind Sonnet's ``VectorQuantizerEMA``).

Both quantizers here share three options that decide whether a codebook is actually used:

* ``kmeans_init``: on the first training batch, run k-means on the encoder outputs and start
  the codebook there instead of at random (codes far from all data are never picked);
* ``dead_code_steps``: a code that no position chose for that many training steps is
  re-seeded on a random recent encoder output ("codebook reset", e.g. Dhariwal et al. 2020,
  Jukebox; Zeghidour et al. 2021, SoundStream);
* ``cosine``: l2-normalise encoder outputs and codes, so assignment is by angle
  (Yu et al. 2022, "Vector-quantized Image Modeling with Improved VQGAN").

All state lives in registered buffers, so ``state_dict`` round-trips through
``torch.load(weights_only=True)``. Under ``torch.distributed`` the statistics that update the
codebook are all-reduced and re-seeded codes are broadcast from rank 0, so every rank keeps
the same codebook. Codebook updates (EMA, k-means, restarts) only happen in training mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

__all__ = ["QuantizerOutput", "VectorQuantizer", "VectorQuantizerEMA", "kmeans",
           "nearest_codes", "squared_distances"]


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor   # (B, D, h, w) straight-through: forward = codes, backward = identity
    codes: torch.Tensor       # (B, h, w) long; (B, N, h, w) stage codes for residual VQ
    loss: torch.Tensor        # scalar: codebook + beta * commitment (0 for FSQ)
    losses: dict = field(default_factory=dict)  # "codebook", "commitment" (unweighted MSEs)
    stats: dict = field(default_factory=dict)   # "perplexity", "used_fraction", "dead_codes"


# ---- distributed helpers (no-ops in a single process) -------------------------------------
def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_sum_(t: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _broadcast_(t: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.broadcast(t, src=0)
    return t


# ---- k-means on the first batch -------------------------------------------------------------
@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int = 10, cosine: bool = False,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's k-means on rows of ``x`` (N, D); returns the (k, D) centroids.

    Centroids start on k random *distinct* data points: images hold many identical rows (every
    background patch of a slice is the same), and centroids started on one spot would all but
    one stay empty for good -- wasted codes or words. With fewer than k distinct rows they are
    drawn with replacement, plus a little noise so that duplicates can separate. Empty clusters
    keep their previous centroid. ``cosine=True`` runs spherical k-means (centroids
    re-normalised after every step).
    """
    distinct = torch.unique(x, dim=0)                            # (m, D), sorted rows
    m, d = distinct.shape
    idx = torch.randperm(m, generator=generator, device="cpu")[:k] if m >= k else \
        torch.randint(0, m, (k,), generator=generator, device="cpu")
    centroids = distinct[idx.to(x.device)].clone()              # (k, D)
    if m < k:
        centroids += 1e-3 * x.std() * torch.randn(k, d, generator=generator).to(x)
    for _ in range(iters):
        codes = nearest_codes(x, centroids, cosine)              # (N,)
        counts = torch.bincount(codes, minlength=k).to(x.dtype)  # (k,)
        sums = torch.zeros_like(centroids).index_add_(0, codes, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        if cosine:
            centroids = F.normalize(centroids, dim=1)
    return centroids


def squared_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """All squared distances ``||z_i - e_k||^2`` (N, K) as ONE matmul:
    ``||z||^2 - 2 z.e + ||e||^2`` (no loop over positions)."""
    z2 = z.pow(2).sum(1, keepdim=True)            # (N, 1)
    e2 = codebook.pow(2).sum(1)                   # (K,)
    return torch.addmm(z2 + e2, z, codebook.t(), beta=1.0, alpha=-2.0)  # (N, K)


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor, cosine: bool = False) -> torch.Tensor:
    """Index of the nearest codebook row for each row of ``z`` (N, D) -> (N,) long.
    With unit vectors (cosine) the nearest code is the one with the largest dot product."""
    if cosine:
        return (z @ codebook.t()).argmax(1)
    return squared_distances(z, codebook).argmin(1)


class VectorQuantizer(nn.Module):
    """Codebook learned by gradient descent on the codebook loss (van den Oord et al. 2017, eq. 3).

    ``loss = ||sg[z_e] - z_q||^2 + beta * ||z_e - sg[z_q]||^2`` where ``sg`` stops gradients.
    The two terms have the same *value*; they differ only in what they move: the first moves
    codes, the second the encoder. ``losses`` reports both unweighted.
    """

    uses_ema = False

    def __init__(self, codebook_size: int, code_dim: int, beta: float = 0.25,
                 kmeans_init: bool = False, kmeans_iters: int = 10,
                 dead_code_steps: int = 0, cosine: bool = False):
        super().__init__()
        self.codebook_size, self.code_dim = codebook_size, code_dim
        self.beta, self.cosine = beta, cosine
        self.kmeans_init, self.kmeans_iters = kmeans_init, kmeans_iters
        self.dead_code_steps = dead_code_steps
        # The reference initialises its nn.Embedding uniformly in [-1/K, 1/K].
        init = torch.empty(codebook_size, code_dim).uniform_(-1 / codebook_size, 1 / codebook_size)
        self._init_codebook_storage(init)
        self.register_buffer("initialized", torch.tensor(0 if kmeans_init else 1, dtype=torch.long))
        # training steps since each code was last chosen (for dead-code restarts)
        self.register_buffer("steps_unused", torch.zeros(codebook_size, dtype=torch.long))

    # -- storage: a Parameter here, buffers in the EMA subclass -------------------------------
    def _init_codebook_storage(self, init: torch.Tensor) -> None:
        self.embedding = nn.Parameter(init)                      # (K, D)

    @torch.no_grad()
    def _set_codes(self, index: torch.Tensor, vectors: torch.Tensor) -> None:
        """Overwrite codebook rows ``index`` with ``vectors`` (used by k-means and restarts)."""
        self.embedding.data[index] = vectors.to(self.embedding.dtype)

    # -- public views --------------------------------------------------------------------------
    @property
    def codebook(self) -> torch.Tensor:
        """The (K, D) code vectors actually used for lookup (unit length when ``cosine``)."""
        e = self.embedding
        return F.normalize(e, dim=1) if self.cosine else e

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) long -> code vectors (B, D, h, w)."""
        return F.embedding(codes, self.codebook).permute(0, 3, 1, 2).contiguous()

    def joint_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """One index per cell already: the identity (residual VQ folds its stages here)."""
        return codes

    # -- the forward pass -------------------------------------------------------------------
    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        b, d, h, w = z_e.shape                                   # (B, D, h, w)
        with torch.autocast(device_type=z_e.device.type, enabled=False):
            z = z_e.float().permute(0, 2, 3, 1).reshape(-1, d)   # (N, D), N = B*h*w
            if self.cosine:
                z = F.normalize(z, dim=1)
            if self.training and not bool(self.initialized):
                self._kmeans_init(z.detach())
            codebook = self.codebook                             # (K, D)
            codes = nearest_codes(z.detach(), codebook.detach(), self.cosine)  # (N,)
            counts = torch.bincount(codes, minlength=self.codebook_size).float()  # (K,)
            z_q = F.embedding(codes, codebook)                   # (N, D) nearest code vectors
            if self.training:
                _all_reduce_sum_(counts)                         # global usage across ranks
                self._ema_update(z.detach(), codes, counts)      # moves the codebook (EMA only)
            codebook_loss = F.mse_loss(z_q, z.detach()) if not self.uses_ema \
                else z.new_zeros(())
            commitment = F.mse_loss(z, z_q.detach())
            loss = codebook_loss + self.beta * commitment
            dead = self._track_and_restart(z.detach(), counts) if self.training else \
                (self.steps_unused >= max(self.dead_code_steps, 1)).sum()
            z_st = z + (z_q - z).detach()                        # straight-through estimator
        quantized = z_st.reshape(b, h, w, d).permute(0, 3, 1, 2).contiguous()  # (B, D, h, w)
        probs = counts / counts.sum().clamp_min(1)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        stats = {
            "perplexity": perplexity.detach(),
            "used_fraction": (counts > 0).float().mean().detach(),
            "dead_codes": dead.detach().float(),
        }
        return QuantizerOutput(quantized=quantized, codes=codes.reshape(b, h, w), loss=loss,
                               losses={"codebook": codebook_loss, "commitment": commitment},
                               stats=stats)

    # -- hooks -----------------------------------------------------------------------------------
    def _ema_update(self, z, codes, counts) -> None:
        """No-op here: the codebook moves through its loss."""

    @torch.no_grad()
    def _kmeans_init(self, z: torch.Tensor) -> None:
        """Place the codebook on k-means centroids of the first batch's encoder outputs."""
        sample = z[torch.randperm(z.shape[0], device=z.device)[: 64 * self.codebook_size]]
        centroids = kmeans(sample, self.codebook_size, self.kmeans_iters, self.cosine)
        _broadcast_(centroids)                                   # same start on every rank
        self._set_codes(torch.arange(self.codebook_size, device=z.device), centroids)
        self.initialized.fill_(1)

    @torch.no_grad()
    def _track_and_restart(self, z: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """Count steps since each code was used; re-seed codes unused for ``dead_code_steps``
        on random encoder outputs of the current batch. Returns how many codes were dead."""
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        if self.dead_code_steps <= 0:
            return torch.zeros((), dtype=torch.long, device=z.device)
        dead = (self.steps_unused >= self.dead_code_steps).nonzero().squeeze(1)  # (n_dead,)
        n_dead = dead.numel()        # identical on all ranks: counts were all-reduced
        if n_dead:
            pick = torch.randint(0, z.shape[0], (n_dead,), device=z.device)
            vectors = _broadcast_(z[pick].contiguous())          # (n_dead, D)
            self._set_codes(dead, vectors)
            self.steps_unused[dead] = 0
        return torch.tensor(n_dead, device=z.device)

    def extra_repr(self) -> str:
        return (f"K={self.codebook_size}, D={self.code_dim}, beta={self.beta}, "
                f"kmeans_init={self.kmeans_init}, dead_code_steps={self.dead_code_steps}, "
                f"cosine={self.cosine}")


class VectorQuantizerEMA(VectorQuantizer):
    """Codebook as exponential moving averages of the encoder outputs assigned to each code.

    Per training step, with one-hot assignments ``n_k`` (count) and ``s_k`` (sum of vectors)::

        N_k <- decay * N_k + (1 - decay) * n_k           # cluster size
        m_k <- decay * m_k + (1 - decay) * s_k           # cluster sum
        N_k' = (N_k + eps) / (sum N + K * eps) * sum N   # Laplace smoothing: no division by 0
        e_k  = m_k / N_k'

    (van den Oord et al. 2017, appendix A.1; Razavi et al. 2019; Sonnet ``VectorQuantizerEMA``.)
    Only the commitment loss remains; ``losses["codebook"]`` is reported as 0. ``N`` starts at 1
    and ``m`` at the initial codebook, so a code nobody picks stays where it is instead of
    being divided by a tiny number.
    """

    uses_ema = True

    def __init__(self, codebook_size: int, code_dim: int, beta: float = 0.25,
                 decay: float = 0.99, eps: float = 1e-5, **kwargs):
        self.decay, self.eps = decay, eps
        super().__init__(codebook_size, code_dim, beta, **kwargs)

    def _init_codebook_storage(self, init: torch.Tensor) -> None:
        self.register_buffer("embedding", init.clone())                 # (K, D)
        self.register_buffer("cluster_size", torch.ones(init.shape[0]))  # (K,)
        self.register_buffer("embed_sum", init.clone())                 # (K, D)

    @torch.no_grad()
    def _set_codes(self, index: torch.Tensor, vectors: torch.Tensor) -> None:
        vectors = vectors.to(self.embedding.dtype)
        self.embedding[index] = vectors
        self.cluster_size[index] = 1.0
        self.embed_sum[index] = vectors

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, z)  # (K, D)
        _all_reduce_sum_(sums)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
        self.embedding.copy_(self.embed_sum / smoothed[:, None])

    def extra_repr(self) -> str:
        return super().extra_repr() + f", decay={self.decay}, eps={self.eps}"

"""The check cells of the student edition: each ``check_*`` tests a function the student wrote
against the library's own implementation on small tensors, and fails with an ``AssertionError``
that says in plain words what is wrong.

A check cell is two lines (``from vqvae_lib.course.checks import check_x`` and ``check_x(x)``),
locked in nbgrader's metadata, so a course running nbgrader grades it unchanged: the cell passes
(prints what it checked) or raises. The reference solutions live in the notebooks between
``### BEGIN SOLUTION`` / ``### END SOLUTION``; ``course.student`` cuts them out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..model.quantizers import VectorQuantizer, VectorQuantizerEMA, nearest_codes
from ..prior.pixelcnn import MaskedConv2d

__all__ = ["check_nearest_code", "check_straight_through", "check_vq_losses",
           "check_ema_update", "check_causal_mask"]


def _call(fn: Callable, name: str, *args):
    """Call the student's function; a blank (NotImplementedError) becomes a plain-words failure."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise AssertionError(f"`{name}` is not written yet: replace `raise NotImplementedError()` "
                             f"in its cell with your code, run that cell, then this one.") from None


def _tensor(value, name: str, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise AssertionError(f"`{name}` must return {what} as a torch tensor, "
                             f"got {type(value).__name__}")
    return value


def _small(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _done(name: str, n: int) -> None:
    print(f"`{name}`: all {n} checks pass.")


# ---- 02: nearest code ------------------------------------------------------------------------
def check_nearest_code(nearest_code: Callable) -> None:
    """Check ``nearest_code(z, codebook) -> (N,) long`` against ``quantizers.nearest_codes``.

    Args:
        nearest_code: the student's function.
    """
    name = "nearest_code"
    z, codebook = _small(0, 7, 3), _small(1, 5, 3)
    z[2] = codebook[4]                                           # one point sits on a code
    got = _tensor(_call(nearest_code, name, z, codebook), name, "the (N,) code indices")
    want = nearest_codes(z, codebook)
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(f"`{name}` must return one index per row of z: shape {tuple(want.shape)}"
                             f" for z of shape {tuple(z.shape)}, got shape {tuple(got.shape)}. "
                             f"Did you reduce over the wrong dimension?")
    if got.dtype.is_floating_point:
        raise AssertionError(f"`{name}` must return integer indices (torch.long), got {got.dtype}: "
                             f"return the arg-min, not the minimum distance")
    d = torch.cdist(z, codebook).pow(2)                          # (N, K) for the messages only
    if torch.equal(got, d.argmax(1)):
        raise AssertionError(f"`{name}` picked the FARTHEST code for every row: the nearest code "
                             f"minimises the distance (argmin), it does not maximise it")
    if not torch.equal(got.long(), want):
        i = int((got.long() != want).nonzero()[0])
        raise AssertionError(f"`{name}`: for row {i} of z you returned code {int(got[i])} "
                             f"(squared distance {float(d[i, got[i]]):.3f}) but code {int(want[i])} "
                             f"is nearer (squared distance {float(d[i, want[i]]):.3f})")
    big_z, big_c = _small(2, 300, 16), _small(3, 64, 16)
    got = _call(nearest_code, name, big_z, big_c)
    if not torch.equal(torch.as_tensor(got).long(), nearest_codes(big_z, big_c)):
        raise AssertionError(f"`{name}` is right on 7 points but wrong on 300 points in 16-D with "
                             f"64 codes: does it assume D = 3 or K = 5 somewhere?")
    _done(name, 3)


# ---- 02: straight-through estimator ------------------------------------------------------------
def check_straight_through(straight_through: Callable) -> None:
    """Check ``straight_through(z_e, z_q)``: value ``z_q``, gradient copied unchanged to ``z_e``,
    none to ``z_q`` (the library's line: ``z + (z_q - z).detach()``).

    Args:
        straight_through: the student's function.
    """
    name = "straight_through"
    z_e = _small(0, 6, 2).requires_grad_()
    z_q = _small(1, 6, 2).requires_grad_()
    out = _tensor(_call(straight_through, name, z_e, z_q), name, "the decoder's input")
    if tuple(out.shape) != tuple(z_e.shape):
        raise AssertionError(f"`{name}` must keep the shape {tuple(z_e.shape)}, got {tuple(out.shape)}")
    if not torch.allclose(out.detach(), z_q.detach(), atol=1e-6):
        raise AssertionError(f"in the forward pass the decoder must receive the CODES z_q; your "
                             f"output differs from z_q by up to "
                             f"{float((out - z_q).abs().max()):.3g}")
    if not out.requires_grad:
        raise AssertionError(f"no gradient can flow through `{name}`'s output: you detached "
                             f"everything. Only the difference (z_q - z_e) is detached")
    grad = _small(2, 6, 2)
    out.backward(grad)
    if z_e.grad is None or not torch.allclose(z_e.grad, grad):
        raise AssertionError("the decoder's gradient must reach z_e unchanged (the derivative of "
                             "the straight-through output with respect to z_e is the identity); "
                             + ("z_e got no gradient at all" if z_e.grad is None else
                                f"z_e got a gradient off by up to {float((z_e.grad - grad).abs().max()):.3g}"))
    if z_q.grad is not None and float(z_q.grad.abs().max()) > 0:
        raise AssertionError("the straight-through output sent gradient to z_q (the codes): the "
                             "codes must be moved by their own loss or EMA, not by the decoder. "
                             "Detach the whole difference (z_q - z_e)")
    _done(name, 4)


# ---- 02: the two losses of the codebook --------------------------------------------------------
def check_vq_losses(vq_losses: Callable) -> None:
    """Check ``vq_losses(z_e, z_q) -> (codebook_loss, commitment_loss)`` against the values
    ``VectorQuantizer.forward`` reports (mean-reduced MSEs) and against which tensor each moves.

    Args:
        vq_losses: the student's function.
    """
    name = "vq_losses"
    quantizer = VectorQuantizer(5, 3, beta=0.25)
    with torch.no_grad():
        quantizer.embedding.copy_(_small(1, 5, 3))
    z_map = _small(0, 2, 3, 2, 2)                                # (B, D, h, w)
    ref = quantizer(z_map)
    z_e = z_map.permute(0, 2, 3, 1).reshape(-1, 3).clone().requires_grad_()   # (N, D)
    codebook = quantizer.embedding.detach().clone().requires_grad_()
    z_q = codebook[ref.codes.reshape(-1)]                          # (N, D)
    out = _call(vq_losses, name, z_e, z_q)
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise AssertionError(f"`{name}` must return two losses: (codebook_loss, commitment_loss)")
    cb, cm = (_tensor(v, name, "each loss") for v in out)
    if cb.dim() != 0 or cm.dim() != 0:
        raise AssertionError(f"each loss must be a scalar (a mean over all positions and "
                             f"dimensions), got shapes {tuple(cb.shape)} and {tuple(cm.shape)}")
    want = float(ref.losses["codebook"].detach())
    for label, got in (("codebook", cb), ("commitment", cm)):
        g = float(got.detach())
        if abs(g - want) > 1e-5 * max(1.0, want):
            ratio = g / want if want else float("nan")
            hint = (f" It is {ratio:.0f} times too large: the library uses the MEAN squared error "
                    f"(F.mse_loss), not the sum" if ratio > 1.5 else "")
            raise AssertionError(f"the {label} loss is {g:.5f}, the library's is {want:.5f} "
                                 f"(mean squared distance between z_e and z_q).{hint}")
    cb.backward(retain_graph=True)
    if z_e.grad is not None and float(z_e.grad.abs().max()) > 0:
        raise AssertionError("the CODEBOOK loss moved the encoder output z_e: it must only move the "
                             "codes. Stop its gradient to z_e (z_e.detach())")
    if codebook.grad is None or float(codebook.grad.abs().max()) == 0:
        raise AssertionError("the codebook loss sends no gradient to the codes: only z_e is "
                             "detached in it, never z_q")
    codebook.grad = None
    cm.backward()
    if codebook.grad is not None and float(codebook.grad.abs().max()) > 0:
        raise AssertionError("the COMMITMENT loss moved the codes: it must only move the encoder "
                             "output. Stop its gradient to the codes (z_q.detach())")
    if z_e.grad is None or float(z_e.grad.abs().max()) == 0:
        raise AssertionError("the commitment loss sends no gradient to z_e: only z_q is detached "
                             "in it")
    if not torch.allclose(z_e.grad, 2 * (z_e - z_q).detach() / z_e.numel(), atol=1e-6):
        raise AssertionError("the commitment loss has the right value but not the right gradient: "
                             "compute it from z_e and z_q.detach() directly")
    _done(name, 5)


# ---- 02: the EMA update with Laplace smoothing -------------------------------------------------
def check_ema_update(ema_update: Callable) -> None:
    """Check ``ema_update(cluster_size, embed_sum, z, codes, decay, eps) -> (cluster_size,
    embed_sum, codebook)`` against one training step of ``VectorQuantizerEMA``, including a code
    whose running count is 0 (where Laplace smoothing keeps the division finite).

    Args:
        ema_update: the student's function.
    """
    name = "ema_update"
    k, d, decay, eps = 4, 2, 0.9, 1e-5
    quantizer = VectorQuantizerEMA(k, d, beta=0.25, decay=decay, eps=eps).train()
    start_codes = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [9.0, 9.0]])
    size0 = torch.tensor([3.0, 1.0, 2.0, 0.0])                     # code 3: count 0, never used
    with torch.no_grad():
        quantizer.embedding.copy_(start_codes)
        quantizer.cluster_size.copy_(size0)
        quantizer.embed_sum.copy_(start_codes * size0[:, None])
    z_map = (_small(0, 1, d, 3, 4) + torch.tensor([1.0, 0.5])[None, :, None, None])  # (1, D, 3, 4)
    sum0 = quantizer.embed_sum.clone()
    codes = quantizer(z_map).codes.reshape(-1)                     # one EMA step happens here
    z = z_map.permute(0, 2, 3, 1).reshape(-1, d)
    out = _call(ema_update, name, size0.clone(), sum0.clone(), z, codes, decay, eps)
    if not (isinstance(out, tuple | list) and len(out) == 3):
        raise AssertionError(f"`{name}` must return three tensors: "
                             f"(cluster_size, embed_sum, codebook)")
    size, total, book = (_tensor(v, name, "each result") for v in out)
    if not torch.allclose(size, quantizer.cluster_size, atol=1e-6):
        raise AssertionError(f"the running counts N_k are {size.tolist()}, expected "
                             f"{[round(v, 4) for v in quantizer.cluster_size.tolist()]}: "
                             f"N_k <- decay * N_k + (1 - decay) * n_k, with n_k how many rows of z "
                             f"chose code k (torch.bincount(codes, minlength=K))")
    if not torch.allclose(total, quantizer.embed_sum, atol=1e-5):
        raise AssertionError("the running sums m_k are wrong: m_k <- decay * m_k + (1 - decay) * "
                             "s_k, with s_k the SUM of the rows of z that chose code k "
                             "(index_add_ adds rows by index)")
    if not bool(torch.isfinite(book).all()):
        raise AssertionError("the codebook has inf or nan: code 3 has a running count of 0, and "
                             "m_k / N_k divides by zero. Laplace smoothing fixes it: "
                             "N_k' = (N_k + eps) / (sum(N) + K * eps) * sum(N)")
    if not torch.allclose(book, quantizer.embedding, atol=1e-4):
        plain = total / size.clamp_min(1e-12)[:, None]
        hint = (" You divided by the raw counts N_k; divide by the Laplace-smoothed counts "
                "N_k' = (N_k + eps) / (sum(N) + K * eps) * sum(N)"
                if torch.allclose(book[:3], plain[:3], atol=1e-4) else
                " The new code vectors are e_k = m_k / N_k' (sums over smoothed counts)")
        raise AssertionError(f"the new codebook differs from the library's by up to "
                             f"{float((book - quantizer.embedding).abs().max()):.3g}.{hint}")
    _done(name, 4)


# ---- 06: the causal mask of a masked convolution ---------------------------------------------
def check_causal_mask(causal_mask: Callable) -> None:
    """Check ``causal_mask(kernel_size, mask_type) -> (k, k)`` against ``MaskedConv2d.mask``.

    Args:
        causal_mask: the student's function.
    """
    name = "causal_mask"
    n = 0
    for k in (3, 5, 7):
        for kind in ("A", "B"):
            want = MaskedConv2d(kind, 1, 1, k).mask[0, 0]
            got = _tensor(_call(causal_mask, name, k, kind), name, "the (k, k) mask")
            if tuple(got.shape) != (k, k):
                raise AssertionError(f"`{name}({k}, {kind!r})` must be {k}x{k}, "
                                     f"got shape {tuple(got.shape)}")
            got = got.float()
            c = k // 2
            if float(got[c + 1:].abs().sum()) > 0:
                raise AssertionError(f"`{name}({k}, {kind!r})` lets the convolution see rows BELOW "
                                     f"the centre: they come later in raster order, set them to 0")
            if float(got[c, c + 1:].abs().sum()) > 0:
                raise AssertionError(f"`{name}({k}, {kind!r})` lets the convolution see cells to the "
                                     f"RIGHT of the centre in its row: they come later, set them to 0")
            if kind == "A" and float(got[c, c]) != 0:
                raise AssertionError("mask type A must hide the centre cell: the first layer "
                                     "predicts that very cell and must not see it")
            if kind == "B" and float(got[c, c]) != 1:
                raise AssertionError("mask type B keeps the centre cell (1): after the first layer "
                                     "it only carries information from earlier cells")
            if not torch.equal(got, want):
                raise AssertionError(f"`{name}({k}, {kind!r})` hides cells that come BEFORE the "
                                     f"centre (rows above, or left in its row); expected\n{want}\n"
                                     f"got\n{got}")
            n += 1
    _done(name, n)

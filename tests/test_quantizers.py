"""Quantizers: assignment, straight-through gradients, EMA arithmetic, k-means init, restarts."""

import io

import pytest
import torch

from vqvae_lib.model.quantizers import (
    VectorQuantizer,
    VectorQuantizerEMA,
    kmeans,
    nearest_codes,
    squared_distances,
)


def _grid(z2d: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (1, D, 1, N): a batch of one 'image' whose N positions are the rows."""
    return z2d.t().reshape(1, z2d.shape[1], 1, -1)


@pytest.mark.parametrize("cosine", [False, True])
def test_nearest_code_equals_brute_force(cosine):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 5, 3, 4, generator=g)                       # (B, D, h, w)
    vq = VectorQuantizer(17, 5, cosine=cosine).eval()
    vq.embedding.data = torch.randn(17, 5, generator=g)
    out = vq(z)
    rows = z.permute(0, 2, 3, 1).reshape(-1, 5)
    book = vq.codebook.detach()
    if cosine:
        rows = torch.nn.functional.normalize(rows, dim=1)
    expected = []
    for r in rows:                                                 # brute force, one by one
        d = [float(((r - e) ** 2).sum()) for e in book]
        expected.append(min(range(len(d)), key=d.__getitem__))
    assert out.codes.shape == (2, 3, 4)
    assert out.codes.flatten().tolist() == expected
    # the quantized tensor holds exactly those code vectors
    assert torch.allclose(out.quantized.permute(0, 2, 3, 1).reshape(-1, 5), book[expected],
                          atol=1e-6)


def test_squared_distances_match_cdist():
    z, e = torch.randn(50, 7), torch.randn(9, 7)
    assert torch.allclose(squared_distances(z, e), torch.cdist(z, e) ** 2, atol=1e-4)


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_straight_through_gradient_equals_gradient_at_quantized(cls):
    vq = cls(8, 4, beta=0.25).train()
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    out = vq(z)
    upstream = torch.randn_like(out.quantized)                     # what a decoder would send
    (out.quantized * upstream).sum().backward()
    assert torch.equal(z.grad, upstream)                           # copied straight through


def test_commitment_gradient_pulls_encoder_to_code_and_codebook_loss_moves_codes():
    vq = VectorQuantizer(4, 2, beta=0.5).train()
    z = torch.randn(1, 2, 1, 6, requires_grad=True)
    out = vq(z)
    out.loss.backward()
    zq = out.quantized.detach()
    n = z.numel()
    # d/dz [beta * mean((z - sg[zq])^2)] = 2 beta (z - zq) / n
    assert torch.allclose(z.grad, 2 * 0.5 * (z.detach() - zq) / n, atol=1e-6)
    # the codebook loss reaches exactly the codes that were used
    used = torch.zeros(4, dtype=torch.bool)
    used[out.codes.flatten()] = True
    assert (vq.embedding.grad[used].abs().sum(1) > 0).all()
    assert (vq.embedding.grad[~used] == 0).all()


def test_ema_update_equals_hand_computation():
    decay, eps = 0.5, 0.1
    vq = VectorQuantizerEMA(2, 1, decay=decay, eps=eps).train()
    vq._set_codes(torch.arange(2), torch.tensor([[0.0], [10.0]]))  # N = 1, m = e
    z = torch.tensor([[1.0], [2.0], [3.0]])                        # all nearest to code 0
    out = vq(_grid(z))
    assert out.codes.flatten().tolist() == [0, 0, 0]
    # by hand: N = 0.5*[1, 1] + 0.5*[3, 0] = [2, 0.5];  m = 0.5*[0, 10] + 0.5*[6, 0] = [3, 5]
    # total = 2.5; N' = (N + 0.1) / (2.5 + 0.2) * 2.5 = [2.1, 0.6] / 2.7 * 2.5
    n_smooth = torch.tensor([2.1, 0.6]) / 2.7 * 2.5
    expected = torch.tensor([3.0, 5.0]) / n_smooth
    assert torch.allclose(vq.cluster_size, torch.tensor([2.0, 0.5]))
    assert torch.allclose(vq.embed_sum.squeeze(1), torch.tensor([3.0, 5.0]))
    assert torch.allclose(vq.embedding.squeeze(1), expected, atol=1e-6)
    # the output used the codebook *before* the update, and there is no codebook loss
    assert torch.allclose(out.quantized.flatten(), torch.zeros(3))
    assert float(out.losses["codebook"]) == 0.0


def test_eval_mode_never_changes_the_codebook():
    vq = VectorQuantizerEMA(8, 3, kmeans_init=True, dead_code_steps=1).eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    for _ in range(3):
        vq(torch.randn(2, 3, 4, 4) + 5)
    for k, v in vq.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_dead_code_restart_revives_unused_codes(cls):
    torch.manual_seed(0)
    vq = cls(4, 2, dead_code_steps=3).train()
    far = torch.tensor([[100.0, 100.0], [-100.0, 100.0]])          # codes 2, 3: far from data
    near = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])                 # codes 0, 1: on the data
    vq._set_codes(torch.arange(4), torch.cat([near, far]))
    data = lambda: _grid(torch.randn(64, 2))                      # noqa: E731
    for step in range(3):
        out = vq(data())
        assert set(out.codes.unique().tolist()) <= {0, 1}
        assert float(out.stats["dead_codes"]) == (2 if step == 2 else 0)
    # codes 2 and 3 now sit on encoder outputs ...
    assert vq.codebook[2:].abs().max() < 10
    assert vq.steps_unused.tolist() == [0, 0, 0, 0]
    # ... and get chosen again
    used = set()
    for _ in range(5):
        used |= set(vq(data()).codes.unique().tolist())
    assert {2, 3} <= used


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_kmeans_init_places_codes_on_data(cls):
    torch.manual_seed(0)
    centres = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0], [-5.0, -5.0]])
    points = (centres[:, None] + 0.2 * torch.randn(4, 50, 2)).reshape(-1, 2)  # (200, 2)
    vq = cls(8, 2, kmeans_init=True, kmeans_iters=5).train()
    err_before = squared_distances(points, vq.codebook).min(1).values.mean()
    assert int(vq.initialized) == 0
    vq(_grid(points))
    assert int(vq.initialized) == 1
    # every code is a centroid of data: within the spread of some cluster
    nearest_point = torch.cdist(vq.codebook.detach(), points).min(1).values
    assert (nearest_point < 1.0).all()
    err_after = squared_distances(points, vq.codebook.detach()).min(1).values.mean()
    assert err_after < 0.05 * err_before
    # and it only happens once
    book = vq.codebook.detach().clone()
    vq.eval()(_grid(points + 50))
    assert torch.equal(vq.codebook.detach(), book)


def test_kmeans_lowers_distortion_every_run():
    x = torch.randn(300, 3)
    c = kmeans(x, 6, iters=0)
    c10 = kmeans(x, 6, iters=10, generator=torch.Generator().manual_seed(0))
    d0 = squared_distances(x, c).min(1).values.mean()
    d10 = squared_distances(x, c10).min(1).values.mean()
    assert c10.shape == (6, 3)
    assert d10 < d0
    codes = nearest_codes(x, c10)
    for k in range(6):                              # Lloyd fixed point: centroid = cluster mean
        if (codes == k).any():
            assert torch.allclose(c10[k], x[codes == k].mean(0), atol=0.15)


def test_kmeans_starts_on_distinct_points_so_no_centroid_is_wasted():
    # 90 % identical rows (like the background of a slice) and 20 small clusters: started on
    # random rows, most centroids would land on the one repeated row and stay empty.
    g = torch.Generator().manual_seed(0)
    centres = 10 * torch.randn(20, 4, generator=g)
    spread = centres.repeat_interleave(10, 0) + 0.1 * torch.randn(200, 4, generator=g)
    x = torch.cat([torch.zeros(1800, 4), spread])
    c = kmeans(x, 21, iters=10, generator=torch.Generator().manual_seed(1))
    assert torch.unique(c, dim=0).shape[0] == 21                 # no two centroids alike
    used = torch.bincount(nearest_codes(x, c), minlength=21)
    assert (used > 0).all()                                      # every centroid owns points
    # fewer distinct rows than centroids: still k centroids, near the data
    few = kmeans(torch.zeros(50, 2), 4, iters=2, generator=torch.Generator().manual_seed(0))
    assert few.shape == (4, 2) and few.abs().max() < 1e-2


def test_cosine_codes_are_unit_vectors():
    vq = VectorQuantizerEMA(16, 4, cosine=True, kmeans_init=True).train()
    out = vq(torch.randn(2, 4, 5, 5) * 7)
    assert torch.allclose(vq.codebook.norm(dim=1), torch.ones(16), atol=1e-5)
    assert torch.allclose(out.quantized.norm(dim=1), torch.ones(2, 5, 5), atol=1e-5)


def test_usage_statistics():
    vq = VectorQuantizer(4, 2).eval()
    vq.embedding.data = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    uniform = vq(_grid(vq.embedding.data.repeat(3, 1)))           # every code 3 times
    assert torch.isclose(uniform.stats["perplexity"], torch.tensor(4.0))
    assert float(uniform.stats["used_fraction"]) == 1.0
    one = vq(_grid(torch.zeros(5, 2)))                             # a single code
    assert torch.isclose(one.stats["perplexity"], torch.tensor(1.0))
    assert float(one.stats["used_fraction"]) == 0.25


@pytest.mark.parametrize("cls", [VectorQuantizer, VectorQuantizerEMA])
def test_state_dict_round_trips_with_weights_only(cls):
    vq = cls(8, 3, kmeans_init=True, dead_code_steps=5).train()
    for _ in range(2):
        vq(torch.randn(2, 3, 4, 4))
    buf = io.BytesIO()
    torch.save(vq.state_dict(), buf)
    buf.seek(0)
    fresh = cls(8, 3, kmeans_init=True, dead_code_steps=5)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(fresh.codebook, vq.codebook)
    assert int(fresh.initialized) == 1
    assert torch.equal(fresh.steps_unused, vq.steps_unused)


_DDP_SCRIPT = r'''
import os, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
from vqvae_lib.model.quantizers import VectorQuantizerEMA

def worker(rank, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[2])
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(rank)                       # different data AND different k-means per rank
    vq = VectorQuantizerEMA(8, 3, decay=0.5, kmeans_init=True, dead_code_steps=1).train()
    counts = torch.zeros(8)
    for step in range(3):
        z = torch.randn(2, 3, 4, 4) + 3 * rank
        out = vq(z)
        counts += torch.bincount(out.codes.flatten(), minlength=8)
    torch.save({k: v.clone() for k, v in vq.state_dict().items()}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()

if __name__ == "__main__":
    mp.spawn(worker, args=(sys.argv[1],), nprocs=2)
'''


def test_codebook_stays_identical_across_ddp_ranks(tmp_path):
    """Two gloo processes with different data: EMA statistics are all-reduced and k-means /
    restarted codes broadcast, so both ranks end with the same codebook and buffers."""
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "ddp_vq.py"
    script.write_text(_DDP_SCRIPT)
    subprocess.run([sys.executable, str(script), str(tmp_path), str(port)], check=True,
                   timeout=120)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k

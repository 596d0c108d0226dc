"""Do the codes and the patch words come out the same on the GPU as on the CPU?

The first GPU run of the `gpu` preset (benchmarks/gpu.md) drew grey blocks in the background and
its word vocabulary explained the codes far worse than the same recipe prepared on the CPU
(5.3 against 3.8 bits per code cell). This script measures, on one trained VQ-VAE, where the two
devices part: the share of code cells that agree when the same slices are encoded on each, then,
with one vocabulary fitted on the CPU, the share of patches named by the same word, and the same
for a vocabulary fitted on the GPU judged by the CPU's words.

    python benchmarks/gpu_check_words.py runs/gpu-bench/checkpoints/best.pt [--images 256]
"""

from __future__ import annotations

import argparse
import json

import torch

from vqvae_lib.checkpoint import load_model
from vqvae_lib.data.slices import load_split
from vqvae_lib.model.inference import encode
from vqvae_lib.prior.build import build_prior
from vqvae_lib.prior.hierarchy import code_vector_table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    gpu = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cpu = torch.device("cpu")
    report = {"device": str(gpu), "torch": torch.__version__,
              "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
              "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
              "float32_matmul_precision": torch.get_float32_matmul_precision()}
    vq, cfg, _ = load_model(args.checkpoint, cpu)
    images = load_split("train", args.data_dir, size=cfg.image_size, masks=False,
                        verbose=False).tensors()[:args.images]
    codes_cpu = encode(vq, images, device=cpu)
    codes_gpu = encode(vq.to(gpu), images, device=gpu)
    vq.to(cpu)
    report["codes_agree"] = float((codes_cpu == codes_gpu).float().mean())

    fitted = {}
    for dev in (cpu, gpu):
        prior = build_prior(cfg, 0, code_vector_table(vq)).to(dev)
        prior.prepare(codes_cpu.to(dev), max_patches=20000)
        fitted[dev.type if dev == cpu else "gpu"] = prior
    ref = fitted["cpu"]
    words_ref = ref.words_of(codes_cpu)
    words_on_gpu = ref.to(gpu).words_of(codes_cpu.to(gpu)).cpu()
    ref.to(cpu)
    report["words_agree_same_vocabulary"] = float((words_ref == words_on_gpu).float().mean())
    for name, prior in fitted.items():
        prior.to(cpu)
        w = prior.words_of(codes_cpu)
        used = torch.bincount(w.reshape(-1), minlength=len(prior.centroids))
        report[f"vocabulary_{name}"] = {
            "words_used": int((used > 0).sum()),
            "code_bits_given_words": float(prior.code_bits(codes_cpu, w).mean())}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

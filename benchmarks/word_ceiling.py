"""How much of a slice survives its patch words: the ceiling of any patch-word prior.

A patch-word prior draws words, then renders each as a real patch of codes. Even a perfect word
prior -- one that drew the words of real slices -- would show what the words keep and no more.
This script measures that ceiling: it takes the **validation** grids (slices no vocabulary saw),
names their patches by a vocabulary fitted on the training grids, renders the words back with the
``matched`` rule and decodes them, then compares with the VQ-VAE's own reconstructions of the same
slices: the per-slice CSF fraction (its spread and its correlation with the reconstruction's) and
the generation metrics against the test slices (1-NN leaves out whole validation subjects). One row
per vocabulary: this preset's (4x4-code patches, 1024 words), more words, smaller patches.
Writes ``benchmarks/word_ceiling.json``.

    python benchmarks/word_ceiling.py --run-dir runs/cpu
"""

from __future__ import annotations

import time

import numpy as np
import torch
from render_compare import arguments, row, trained_run, write_report
from tqdm.auto import tqdm

from vqvae_lib.data.slices import load_split
from vqvae_lib.model.inference import decode
from vqvae_lib.prior.codes import split_codes
from vqvae_lib.prior.hierarchy import code_vector_table
from vqvae_lib.prior.scoring import load_real, score_images
from vqvae_lib.prior.words import PatchWordPrior

VOCABULARIES = [(4, 1024), (4, 4096), (2, 1024)]
"""(patch side in code cells, words): the cpu preset's first."""


def csf_agreement(fractions: np.ndarray, reference: np.ndarray) -> dict:
    """Spread and correlation of the per-slice CSF fraction against the reconstructions'."""
    a, b = fractions[:, 1], reference[:, 1]
    return {"csf_mean": round(float(a.mean()), 4), "csf_std": round(float(a.std()), 4),
            "csf_corr_with_reconstruction": round(float(np.corrcoef(a, b)[0, 1]), 3)}


def main() -> None:
    args = arguments(__doc__, "word_ceiling.json", seeds=False)
    run, checkpoint, vqvae, cfg = trained_run(args.run_dir)
    codes = {s: split_codes(vqvae, checkpoint, cfg, s, args.data_dir, run, "cpu")["codes"].long()
             for s in ("train", "validate")}
    subjects = load_split("validate", args.data_dir, size=cfg.image_size, masks=False,
                          verbose=False).subjects
    if len(subjects) != len(codes["validate"]):
        raise SystemExit(f"{run}/prior/codes_validate.pt does not match the validation split")
    real = load_real(args.data_dir, cfg.image_size, run, verbose=False)
    pick = torch.linspace(0, len(codes["validate"]) - 1, args.n).round().long().numpy()
    recon = decode(vqvae, codes["validate"])
    reference = real.fractions(recon)
    rows = [{"vocabulary": "none (reconstructions)", **csf_agreement(reference, reference),
             **row(score_images(recon[pick], real, args.n, groups=subjects[pick]))}]
    for patch, words in tqdm(VOCABULARIES, desc="vocabularies"):
        t0 = time.perf_counter()
        vocab = PatchWordPrior(cfg.codebook_size, cfg.code_dim, words=words, patch=patch,
                               grid_size=codes["train"].shape[1:])
        vocab.code_vectors.copy_(code_vector_table(vqvae))
        vocab.prepare(codes["train"])
        seconds = time.perf_counter() - t0
        w = vocab.words_of(codes["validate"])
        images = decode(vqvae, vocab.render_words(w, torch.Generator().manual_seed(0)))
        rows.append({"vocabulary": f"{patch}x{patch} codes, {words} words",
                     "word_grid": list(w.shape[1:]), "prepare_seconds": round(seconds, 1),
                     "code_bits_given_words": round(float(vocab.code_bits(codes["validate"],
                                                                          w).mean()), 3),
                     **csf_agreement(real.fractions(images), reference),
                     **row(score_images(images[pick], real, args.n, groups=subjects[pick]))})
    write_report(args, __doc__, run, rows, render="matched")


if __name__ == "__main__":
    main()

"""The numbers of the offline report: one :class:`Section` (a titled table of name/value rows) per
file a run writes (the training history, notebook 05's ``metrics.json``, the prior's
``prior/metrics.json`` and ``prior/generation.json``) and per benchmark JSON of an explicit set
(:data:`BENCHMARKS`), each with where and on which machine it was measured. A missing file gives
an empty table that says so; a file whose values have the wrong type is a DataError naming it.
:mod:`vqvae_lib.course.report` turns these tables into HTML.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..paths import repo_root

__all__ = ["Section", "key_numbers", "BENCHMARKS", "NOT_REPORTED"]


@dataclass
class Section:
    """One table of the report: a title, the file it came from, (name, value) rows."""

    title: str
    source: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    missing: str = ""          # why the table is empty (file absent), shown instead


def _load(path: Path) -> dict | list | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _fmt(v, digits: int = 3) -> str:
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _stat(d: dict | None, unit: str = "") -> str:
    if not isinstance(d, dict) or "mean" not in d:
        return "n/a"
    return (f"{d['mean']:.3f}{unit} (std {d.get('std', float('nan')):.3f}, "
            f"5th percentile {d.get('p5', float('nan')):.3f})")


def _read(run_dir: Path, rel: str, title: str, notebook: str, kind: type):
    """``(data or None, its Section)``: the JSON file ``rel`` of the run if it holds a ``kind``,
    else None and a Section saying which notebook writes it."""
    data = _load(run_dir / rel)
    sec = Section(title, rel)
    if not isinstance(data, kind):
        sec.missing = f"no {rel}: run notebook {notebook}"
        return None, sec
    return data, sec


def _reconstruction(run_dir: Path) -> Section:
    m, sec = _read(run_dir, "metrics.json", "Reconstruction (notebook 05)", "05_reconstruction_evaluation", dict)
    if m is None:
        return sec
    n = f"{m.get('n_images')} {m.get('split', '')} slices" + (" (a subset)" if m.get("subset") else "")
    sec.rows = [
        ("data", f"{m.get('source')}, {m.get('image_size')}x{m.get('image_size')} px, {n}"),
        ("SSIM (Gaussian, data range 1)", _stat(m.get("ssim_gaussian"))),
        ("SSIM (7x7 uniform window)", _stat(m.get("ssim_uniform"))),
        ("PSNR", _stat(m.get("psnr_db"), " dB")),
        ("rate", f"{_fmt(m.get('bits_per_pixel'), 4)} bits/pixel; code entropy "
                 f"{_fmt(m.get('code_entropy_bits_per_cell'), 2)} bits/cell"),
        ("course target", f"SSIM > {m.get('ssim_target')}: "
                          f"{'met' if m.get('passed') else 'not met'}"),
        ("codes used", f"{m.get('codes_used')} of {m.get('codebook_size')} "
                       f"(perplexity {_fmt(m.get('code_perplexity'), 1)})"),
        ("checkpoint", f"epoch {m.get('checkpoint_epoch')}, step {m.get('checkpoint_step')}"),
    ]
    return sec


def _training(run_dir: Path) -> Section:
    h, sec = _read(run_dir, "history.json", "Training (notebook 03)", "03_training", list)
    if not h:
        return sec
    best = max(h, key=lambda r: r.get("val_ssim", float("-inf")))
    sec.rows = [("epochs", str(h[-1].get("epoch", len(h)))),
                ("training time", f"{h[-1].get('seconds', float('nan')) / 60:.1f} min"),
                ("best validation SSIM", f"{_fmt(best.get('val_ssim'))} at epoch "
                                         f"{best.get('epoch')}"),
                ("throughput (last epoch)", f"{_fmt(h[-1].get('images_per_s'), 0)} images/s")]
    return sec


def _prior(run_dir: Path) -> Section:
    m, sec = _read(run_dir, "prior/metrics.json", "Prior over codes (notebook 06)", "06_prior_and_generation", dict)
    if m is None:
        return sec
    sec.rows = [("test NLL", f"{_fmt(m.get('test_bits'), 2)} bits/cell"),
                ("baselines", f"uniform {_fmt(m.get('uniform'), 2)}, unigram "
                              f"{_fmt(m.get('unigram_test'), 2)} bits/cell"),
                ("training", f"{m.get('steps')} steps, {_fmt(m.get('minutes'), 1)} min")]
    return sec


def _machine(b: dict) -> str:
    """Where a benchmark was measured: its ``machine`` entry (a dict or a sentence) and date."""
    machine = b.get("machine")
    if isinstance(machine, dict):
        cpu = machine.get("cpu_model") or machine.get("cpu") or "?"
        machine = f"{cpu}, {machine.get('cpu_count') or machine.get('threads', '?')} cores"
    return f"{b.get('date', '')} {machine or 'machine not recorded'}".strip()


def _rows_training(b: dict) -> list[tuple[str, str]]:
    return [(name, ", ".join(f"{k} {_fmt(v)}" for k, v in r.items()
                             if k.startswith(("images_per_s", "seconds_to", "best_", "test_ssim"))))
            for name, r in b["results"].items()] + \
        [(k, _fmt(v)) for k, v in b.get("summary", {}).items()]


def _rows_precision(b: dict) -> list[tuple[str, str]]:
    return [(f"{r['precision']}: {r['what']}", ", ".join(f"{k} {_fmt(v)}" for k, v in r.items()
                                                       if k not in ("precision", "what")))
            for r in b["results"]] + [("CPU bf16 flags", str(b.get("cpu_bf16_flags")))]


def _rows_prior(b: dict) -> list[tuple[str, str]]:
    return [(f"{r['option']}, {r['minutes']:g} min, seed {r['seed']}",
             f"{r['steps']} steps, test NLL {_fmt(r['test_bits'], 3)} bits/cell, 1-NN shape "
             f"{_fmt(r['one_nn_shape']['generated'], 2)} (floor {_fmt(r['one_nn_shape']['floor'], 2)})"
             f", intensity {_fmt(r['one_nn_intensity']['generated'], 2)} (floor "
             f"{_fmt(r['one_nn_intensity']['floor'], 2)}), tissue W1 / floor "
             + ", ".join(f"{t} {v:.1f}" for t, v in r["tissue_w1_over_floor"].items())
             + f", near-copy patches {_fmt(r['patch_memorisation']['share_near_copies'], 3)}")
            for r in b["results"]]


def _rows_cpu_preset(b: dict) -> list[tuple[str, str]]:
    return [(f"{r['variant']} {r['overrides'] or '(the preset then)'}",
             f"{r['steps']} steps, {_fmt(r['images_per_s'], 0)} images/s, test SSIM "
             f"{_fmt(r['test_ssim'])} at {_fmt(r['rate_bpp'], 3)} bpp; WebP at that rate "
             f"{_fmt(r['webp_ssim_at_rate'])}") for r in b["results"]]


def _rows_spend(b: dict) -> list[tuple[str, str]]:
    return [(f"{r['row']}: K={r['codebook_size']}, VQ-VAE {r['vqvae_minutes']:g} min, prior "
             f"{r['prior_minutes']:g} min",
             f"test SSIM {_fmt(r['test_ssim'])} at {_fmt(r['rate_bpp'], 3)} bpp, prior NLL "
             f"{_fmt(r['prior_test_bits'], 3)} bits/cell, 1-NN shape "
             f"{_fmt(r['one_nn_shape']['generated'], 2)} / intensity "
             f"{_fmt(r['one_nn_intensity']['generated'], 2)}") for r in b["results"]]


def _rows_quantizers(b: dict) -> list[tuple[str, str]]:
    return [(v["variant"], f"{v['quantizer']}: validation SSIM {_fmt(v['val_ssim'])}, "
                           f"{v['val_codes_used']} codes used") for v in b["variants"]]


def _rows_codecs(b: dict) -> list[tuple[str, str]]:
    rows = [(name, "SSIM " + ", ".join(f"{s:.3f} at {r:.2f} bpp" for r, s in zip(c["bpp"], c["ssim"],
                                                                                strict=True)))
            for name, c in b["curves"].items()]
    return rows + [("VQ-VAE", b["vqvae"] if isinstance(b["vqvae"], str) else
                    ", ".join(f"{k} {_fmt(v)}" for k, v in b["vqvae"].items()
                              if isinstance(v, (int, float))))]


def _rows_data(b: dict) -> list[tuple[str, str]]:
    return [("data", str(b["data"]))] + [(f"load {k}", f"first {_fmt(v['first_load_s'], 1)} s, "
                                                      f"cached {_fmt(v['cached_load_s'], 2)} s")
                                         for k, v in b["load"].items() if isinstance(v, dict)]


BENCHMARKS = {"results.json": ("the reference recipe vs the cpu preset", _rows_training),
              "precision.json": ("fp32 vs bf16 on this CPU at equal minutes", _rows_precision),
              "cpu_preset.json": ("how the cpu preset's batch was chosen (equal minutes)", _rows_cpu_preset),
              "spend.json": ("codebook size and the VQ-VAE / prior split of the minutes", _rows_spend),
              "prior_compare.json": ("gated PixelCNN vs causal transformer at equal minutes", _rows_prior),
              "prior_minutes.json": ("what more prior minutes buy", _rows_prior),
              "quantizers.json": ("quantizers at an equal budget (notebook 04)", _rows_quantizers),
              "codecs.json": ("classical codecs on the test split (notebook 05)", _rows_codecs),
              "data_scale.json": ("data at OASIS scale", _rows_data)}
"""The benchmark files the report shows (an explicit set, not a glob) and how to read each."""

NOT_REPORTED = {"data_scale_before_mmap.json": "a before/after record for benchmarks/README.md",
                "data_scale_mmap_fix.json": "a before/after record for benchmarks/README.md",
                "gpu_h200.json": "one GPU run of older code (benchmarks/gpu.md)"}
"""Benchmark files kept for the record but not shown in the report, and why."""


def _benchmarks(bench_dir: Path) -> list[Section]:
    """One section per file of :data:`BENCHMARKS` that exists: where it was measured and its
    result numbers (a file of the wrong shape is a DataError naming it)."""
    out = []
    for name, (what, rows) in BENCHMARKS.items():
        path = bench_dir / name
        b = _load(path) if path.is_file() else None
        if not isinstance(b, dict):
            continue
        sec = Section(f"Benchmark: {what}", f"benchmarks/{name}")
        sec.rows = [("measured", _machine(b))] + _checked(rows, path, b)
        out.append(sec)
    return out


def _generation(run_dir: Path) -> Section:
    """How real the generated slices are (``prior/generation.json``), each beside its floor."""
    g, sec = _read(run_dir, "prior/generation.json", "Generated slices (notebook 06)", "06_prior_and_generation", dict)
    if g is None:
        return sec
    sec.rows.append(("generator", f"{g.get('prior_kind')}, {g.get('prior_cond_bins')} position "
                                  f"bins, temperature {g.get('temperature')}, "
                                  f"{g.get('n_generated')} samples vs {g.get('n_real')} real"))
    for key, label in (("one_nn_shape", "1-NN accuracy, 32x32 shape (0.5 = indistinguishable)"),
                       ("one_nn_intensity", "1-NN accuracy, in-head intensity histogram"),
                       ("precision", "precision (k = 3)"), ("recall", "recall (k = 3)")):
        v = g.get(key)
        if isinstance(v, dict):
            sec.rows.append((label, f"{_fmt(v.get('generated'), 3)} (real vs real: "
                                    f"{_fmt(v.get('floor'), 3)})"))
    for tissue, v in (g.get("tissue_w1") or {}).items():
        if isinstance(v, dict):
            sec.rows.append((f"tissue fraction W1, {tissue}",
                             f"{_fmt(v.get('generated'), 4)} (floor {_fmt(v.get('floor'), 4)})"))
    return sec


def _checked(build, path: Path, *args):
    """``build(*args)``, or one DataError naming ``path`` when its values have the wrong type."""
    try:
        return build(*args)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as err:
        raise DataError(
            f"{path} holds a value of the wrong type ({type(err).__name__}: {err}): rerun the "
            "notebook that writes it, or delete the file; the previous report is unchanged."
        ) from None


def key_numbers(run_dir: Path, bench_dir: Path | None = None) -> list[Section]:
    """The report's tables, from whatever files the run folder holds; a file whose values have
    the wrong type is a DataError naming it (nothing is written before this is read).

    Args:
        run_dir: the run folder (``runs/<preset>``).
        bench_dir: folder of benchmark JSONs (default ``benchmarks/`` of the repository).
    """
    run_dir = Path(run_dir)
    bench_dir = repo_root() / "benchmarks" if bench_dir is None else Path(bench_dir)
    secs = [_checked(build, run_dir / rel, run_dir) for build, rel in (
        (_training, "history.json"), (_reconstruction, "metrics.json"),
        (_prior, "prior/metrics.json"), (_generation, "prior/generation.json"))]
    return secs + (_benchmarks(bench_dir) if bench_dir.is_dir() else [])

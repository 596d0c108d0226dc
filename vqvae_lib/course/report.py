"""An offline HTML report of one run: ``runs/<preset>/report/index.html`` (``make report``).

    python -m vqvae_lib.course.report --preset cpu            # or --run-dir runs/cpu

The report holds the run's key numbers (``metrics.json`` of notebook 05, the prior's
``prior/metrics.json``, the training history, and the benchmark JSONs under ``benchmarks/``
when present), a page per executed notebook (``notebooks/*.html``, saved widget state rendered
by a local copy of the widget manager, see ``report_export``), and every figure of
``figures/``. Nothing loads from the network: copy the folder anywhere and open ``index.html``.

The report is built beside ``--out`` and swapped in when whole; only a folder holding
``report_manifest.json`` (a report) is ever replaced, never the run folder or anything else.
The command holds the run folder's lock (:mod:`vqvae_lib.runlock`) while it reads and writes.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..common import atomic_write_text, progress
from ..errors import DataError, cli
from ..folders import check_replaceable, replace_folder
from ..paths import repo_root
from ..runlock import run_lock
from .report_export import copy_assets, export_notebook

__all__ = ["Section", "key_numbers", "build_report", "main", "MANIFEST", "READS"]

MANIFEST = "report_manifest.json"
"""Marks a folder as a report (only such a folder is ever replaced)."""
READS = ("notebooks", "figures", "checkpoints", "metrics.json", "history.json", "prior")
"""What the report reads from a run folder: its output may not be, hold or lie inside these."""


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


def _notebook_title(path: Path) -> str:
    try:
        nb = json.loads(path.read_text())
        first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
        line = "".join(first["source"]).strip().splitlines()[0]
        return line.lstrip("# ").strip()
    except (OSError, ValueError, StopIteration, IndexError, KeyError):
        return path.stem


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;
padding:4px 10px;text-align:left;vertical-align:top}th{background:#f3f3f3}.missing{color:#a60}
figure{display:inline-block;margin:6px;vertical-align:top;max-width:520px}
figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:12px;color:#555}
.note{background:#fff8e1;border-left:4px solid #e6a700;padding:6px 10px}"""


def _index_html(title: str, sections: list[Section], pages: list[tuple[str, str, dict]],
                figures: dict[str, list[str]]) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}"
             f"</title><style>{_CSS}</style></head><body><h1>{e(title)}</h1>",
             f"<p>Made {time.strftime('%Y-%m-%d %H:%M')} by <code>python -m vqvae_lib.course.report"
             "</code>. Everything here reads offline.</p><h2>Key numbers</h2>"]
    for s in sections:
        parts.append(f"<h3>{e(s.title)} <small>({e(s.source)})</small></h3>")
        if s.missing:
            parts.append(f"<p class='missing'>{e(s.missing)}</p>")
            continue
        parts.append("<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>"
                                         for k, v in s.rows) + "</table>")
    parts.append("<h2>Notebooks (executed)</h2><p class='note'>The interactive views (sliders,"
                 " code swap) need a live Python kernel: on these pages they show the state "
                 "saved when the notebook ran, and each is marked; the static twin below each "
                 "shows the same figure at fixed positions. Open the notebooks in JupyterLab "
                 "(<code>make lab</code>) to move the controls.</p><ul>")
    for href, name, info in pages:
        live = f" &mdash; {info['live_views']} live views" if info["live_views"] else ""
        parts.append(f"<li><a href='{e(href)}'>{e(name)}</a>{live}</li>")
    parts.append("</ul><h2>Figures</h2>")
    for group, files in figures.items():
        parts.append(f"<h3>{e(group)}</h3>")
        parts += [f"<figure><a href='{e(f)}'><img src='{e(f)}' alt='{e(Path(f).stem)}'></a>"
                  f"<figcaption>{e(Path(f).name)}</figcaption></figure>" for f in files]
    return "\n".join(parts) + "</body></html>\n"


def _adopt_old_report(out: Path) -> None:
    """A report written before reports carried :data:`MANIFEST` (only its four entries and our
    title in ``index.html``) gets the manifest, so it can be replaced like a new one."""
    try:
        ours = ({p.name for p in out.iterdir()} <= {"index.html", "assets", "notebooks", "figures"}
                and "<h1>vqvae-brain report: " in (out / "index.html").read_text(encoding="utf-8"))
    except OSError:
        return
    if ours and not (out / MANIFEST).exists():
        atomic_write_text(out / MANIFEST, json.dumps({"what": "a report written before "
                                                              "report_manifest.json existed"}))


def build_report(run_dir: Path, out_dir: Path | None = None,
                 bench_dir: Path | None = None) -> Path:
    """Write the report of ``run_dir`` and return its ``index.html``.

    The numbers are read first (a file with values of the wrong type stops here, with one
    line naming it); the report is then built beside ``out_dir`` and swapped in when complete
    (:func:`vqvae_lib.folders.replace_folder`), so a failure leaves the previous report intact.
    ``out_dir`` may not be the run folder, hold or lie inside what the report reads, nor be any
    folder that is not a report. Takes no lock (:func:`main` holds the run folder's).

    Args:
        run_dir: the run folder (``runs/<preset>``) with ``notebooks/``, ``figures/`` and
            the metrics files (any of them may be missing; the report says so).
        out_dir: where to write (default ``<run_dir>/report``); replaced as a whole.
        bench_dir: folder of benchmark JSONs (default the repository's ``benchmarks/``).
    """
    run_dir = Path(run_dir)
    notebooks = sorted((run_dir / "notebooks").glob("*.ipynb"))
    pngs = sorted((run_dir / "figures").glob("*.png"))
    if not run_dir.is_dir() or not (notebooks or pngs or (run_dir / "metrics.json").exists()):
        raise FileNotFoundError(
            f"{run_dir} holds no executed notebooks, figures or metrics.json: run the notebooks "
            f"first (make run-all PRESET=<preset>), or pass --run-dir <your run folder>.")
    out = Path(out_dir) if out_dir else run_dir / "report"
    inputs = [run_dir / rel for rel in READS] + [repo_root() / "benchmarks" if bench_dir is None
                                                 else Path(bench_dir)]
    names = dict(inputs=inputs, force=True, command="vqvae_lib.course.report", option="--out",
                 what="a report of vqvae_lib.course.report")
    if out.is_dir():
        _adopt_old_report(out)
    check_replaceable(out, MANIFEST, **names)
    sections = key_numbers(run_dir, bench_dir)               # before anything is written

    def build(tmp: Path) -> dict:
        (tmp / "figures").mkdir(parents=True)
        copy_assets(tmp)
        pages = []
        for nb in progress(notebooks, desc="notebooks -> HTML", unit="nb"):
            info = export_notebook(nb, tmp / "notebooks" / f"{nb.stem}.html", "../assets")
            pages.append((f"notebooks/{nb.stem}.html", _notebook_title(nb), info))
        figures: dict[str, list[str]] = {}
        stems = {nb.stem[:2]: nb.stem for nb in notebooks}
        for png in pngs:
            shutil.copy(png, tmp / "figures" / png.name)
            prefix = png.stem[:2]
            group = stems.get(prefix, f"notebook {prefix}") if prefix.isdigit() else "training run"
            figures.setdefault(group, []).append(f"figures/{png.name}")
        atomic_write_text(tmp / "index.html", _index_html(f"vqvae-brain report: {run_dir.name}",
                                                          sections, pages, figures))
        return {"what": "an offline HTML report made by vqvae_lib.course.report",
                "run_dir": str(run_dir.resolve()), "made": time.strftime("%Y-%m-%d %H:%M:%S")}

    return replace_folder(out, build, MANIFEST, **names) / "index.html"


@cli
def main(argv: list[str] | None = None) -> int:
    """The command line: build the report (holding the run folder's lock), print where it is;
    1 when there is nothing to show, 2 after a mistake (one line).

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
    """
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu", help="report on runs/<preset> (default cpu)")
    ap.add_argument("--run-dir", default=None, help="the run folder (overrides --preset)")
    ap.add_argument("--out", default=None, help="output folder (default <run-dir>/report)")
    args = ap.parse_args(argv)
    run_dir = Path(args.run_dir) if args.run_dir else repo_root() / "runs" / args.preset
    if not run_dir.is_dir():
        print(f"report: {run_dir} does not exist: run the notebooks first (make run-all "
              "PRESET=<preset>), or pass --run-dir <your run folder>.", file=sys.stderr)
        return 1
    try:
        with run_lock(run_dir, "report"):
            index = build_report(run_dir, args.out)
    except FileNotFoundError as err:
        if err.filename is not None:      # an OS error on a path: the boundary's one line
            raise
        print(f"report: {err}", file=sys.stderr)
        return 1
    print(f"report: open {index.resolve()} (reads offline)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

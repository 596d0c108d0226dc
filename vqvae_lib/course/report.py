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
from pathlib import Path

from ..common import atomic_write_text, progress
from ..errors import cli
from ..folders import check_replaceable, replace_folder
from ..paths import repo_root
from ..runlock import run_lock
from .report_export import copy_assets, export_notebook
from .report_numbers import Section, key_numbers

__all__ = ["build_report", "main", "MANIFEST", "READS"]

MANIFEST = "report_manifest.json"
"""Marks a folder as a report (only such a folder is ever replaced)."""
READS = ("notebooks", "figures", "checkpoints", "metrics.json", "history.json", "prior")
"""What the report reads from a run folder: its output may not be, hold or lie inside these."""


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

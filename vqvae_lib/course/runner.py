"""Execute the tutorial notebooks headlessly, in order, with papermill (``make run-all``).

    python -m vqvae_lib.course.runner --preset cpu [--data-dir DIR] [--run-dir DIR] [--only 03 04]

Executed copies go to ``<run_dir>/notebooks/``; the run stops at the first failing
notebook and names it and the failing cell.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..errors import DataError, cli
from ..paths import repo_root, run_dir_for
from ..runlock import run_lock

__all__ = ["run_all", "run_notebook", "notebook_paths", "appendix_paths", "caller_path", "NotebookFailed", "main"]

SHARED_PARAMETERS = ("preset", "data_dir", "run_dir", "seed")


class NotebookFailed(RuntimeError):
    """A notebook raised: carries the notebook's name and the failing cell."""


def notebook_paths(folder: Path | None = None) -> list[Path]:
    """``notebooks/[0-9][0-9]_*.ipynb`` in order."""
    folder = folder or repo_root() / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def appendix_paths(folder: Path | None = None) -> list[Path]:
    """``notebooks/appendix_*.ipynb``: read beside a lab, never run by ``make run-all``."""
    folder = folder or repo_root() / "notebooks"
    return sorted(folder.glob("appendix_*.ipynb"))


def _failing_cell(executed: Path) -> tuple[int | None, str]:
    """Find the first cell with an error output in an executed notebook."""
    try:
        nb = json.loads(executed.read_text())
    except Exception:
        return None, ""
    # count code cells as the author sees them: skip the cell papermill injects
    code_cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"
                  and "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for i, cell in enumerate(code_cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                src = "".join(cell.get("source", "")).strip().splitlines()
                return i, (src[0] if src else "")
    return None, ""


def run_notebook(
    notebook: Path,
    preset: str,
    run_dir: Path,
    data_dir: str | None = None,
    seed: int = 0,
    extra_parameters: dict | None = None,
) -> Path:
    """Execute one notebook with the shared parameters; return the executed copy's path."""
    import papermill as pm

    out_dir = Path(run_dir) / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / notebook.name
    params = {"preset": preset, "run_dir": str(run_dir), "seed": seed}
    if data_dir:
        params["data_dir"] = str(data_dir)
    params.update(extra_parameters or {})
    os.environ["PAPERMILL_EXECUTION"] = "1"  # the library prints one line per epoch, no bars
    try:
        pm.execute_notebook(
            str(notebook), str(out), parameters=params, cwd=str(notebook.parent),
            progress_bar=False, kernel_name="python3",
        )
    except pm.PapermillExecutionError as err:
        idx, first_line = _failing_cell(out)
        where = f"code cell {idx + 1}" if idx is not None else f"cell {err.exec_count}"
        raise NotebookFailed(
            f"{notebook.name} failed in {where} ({first_line!r}): {err.ename}: {err.evalue}\n"
            f"The executed copy with the full traceback is {out}"
        ) from None
    return out


def _declares(notebook: Path, name: str) -> bool:
    """True when ``notebook``'s cell tagged ``parameters`` assigns ``name``."""
    nb = json.loads(notebook.read_text())
    return any("parameters" in c.get("metadata", {}).get("tags", []) and
               any(line.split("=")[0].strip() == name for line in "".join(c["source"]).splitlines())
               for c in nb["cells"])


def caller_path(path: str | os.PathLike | None) -> Path | None:
    """``path`` made absolute against the caller's working directory (None stays None).

    Papermill runs each notebook with ``notebooks/`` as its working directory, so a relative
    ``DATA_DIR=data/demo`` from ``make`` must be resolved here, before that happens.

    Args:
        path: a folder as the user typed it (``~`` is expanded).
    """
    return None if path in (None, "") else Path(path).expanduser().absolute()


def run_all(
    preset: str = "cpu",
    data_dir: str | None = None,
    run_dir: str | None = None,
    seed: int = 0,
    only: list[str] | None = None,
    extra_parameters: dict | None = None,
) -> list[Path]:
    """Execute the notebooks in order into ``<run_dir>/notebooks/``; stop at the first failure.

    Holds the run folder's lock (:mod:`vqvae_lib.runlock`) for the whole run; the notebook
    kernels it starts inherit it.

    Args:
        preset: the config preset every notebook uses.
        data_dir: the data folder (relative paths are taken from the caller's cwd).
        run_dir: the run folder (default ``runs/<preset>``; relative: from the caller's cwd).
        seed: the seed every notebook uses.
        only: notebook name prefixes to run (default: all).
        extra_parameters: more papermill parameters, each passed only to the notebooks whose
            parameters cell names it (e.g. ``{"prior_minutes": 16}`` for notebook 06).
    """
    rdir = run_dir_for(preset, caller_path(run_dir)).resolve()
    data = caller_path(data_dir)
    if data is not None and not data.is_dir():
        raise DataError(f"DATA_DIR {data_dir} does not exist (resolved to {data} from "
                        f"{Path.cwd()}). Point it at the folder holding keras_png_slices_data/.")
    books = notebook_paths()
    if only:
        books = [b for b in books if any(b.name.startswith(o) for o in only)]
    if not books:
        raise SystemExit("No notebooks matched (looked for notebooks/[0-9][0-9]_*.ipynb).")
    done = []
    t_all = time.perf_counter()
    with run_lock(rdir, "make run-all"):
        for i, nb in enumerate(books, 1):
            print(f"[{i}/{len(books)}] {nb.name} (preset={preset}) ...", flush=True)
            t0 = time.perf_counter()
            mine = {k: v for k, v in (extra_parameters or {}).items() if _declares(nb, k)}
            done.append(run_notebook(nb, preset, rdir, data_dir=data, seed=seed,
                                     extra_parameters=mine))
            print(f"[{i}/{len(books)}] {nb.name} ok in {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"All {len(books)} notebooks ran in {time.perf_counter() - t_all:.0f} s; "
          f"executed copies and figures are in {rdir}", flush=True)
    return done


@cli
def main(argv: list[str] | None = None) -> int:
    """``python -m vqvae_lib.course.runner``: see the module docstring.

    Args:
        argv: the command-line arguments (default ``sys.argv[1:]``).
    """
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--run-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="*", help="notebook name prefixes, e.g. 01 03")
    ap.add_argument("--prior-minutes", type=float, default=None,
                    help="train notebook 06's prior this many minutes (default: the preset's)")
    args = ap.parse_args(argv)
    if args.prior_minutes is not None and not 0 < args.prior_minutes <= 24 * 60:
        ap.error(f"--prior-minutes {args.prior_minutes}: must be in (0, 1440] minutes")
    extra = {} if args.prior_minutes is None else {"prior_minutes": args.prior_minutes}
    try:
        run_all(args.preset, args.data_dir or None, args.run_dir or None, args.seed, args.only,
                extra)
    except NotebookFailed as err:
        print(f"\nFAILED: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

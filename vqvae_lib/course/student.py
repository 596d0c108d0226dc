"""The student edition of the notebooks, in nbgrader's conventions, without nbgrader.

The course notebooks carry their exercises the way nbgrader expects them, so a course running
nbgrader can generate the assignment from them unchanged:

* a **solution cell** (metadata ``{"nbgrader": {"solution": true, "grade": false, ...}}``) holds
  a small function whose reference solution sits between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``;
* the **check cell** after it (``{"grade": true, "locked": true, "points": 1, ...}``) calls a
  ``vqvae_lib.course.checks`` function that raises an ``AssertionError`` in plain words.

``make student`` (``python -m vqvae_lib.course.student``) writes the student notebooks to
``student/``: every solution region becomes nbgrader's default stub (``# YOUR CODE HERE`` and
``raise NotImplementedError()``, indented like the region), outputs are cleared, and locked
cells are made read-only in JupyterLab (``editable``/``deletable`` false), as nbgrader's
``generate_assignment`` does. ``make run-all`` runs the full notebooks, solutions included.
"""

from __future__ import annotations

import argparse
import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

from ..paths import repo_root
from .runner import notebook_paths

__all__ = ["BEGIN_SOLUTION", "END_SOLUTION", "CODE_STUB", "Exercise", "exercises",
           "strip_solutions", "student_notebook", "write_student_edition"]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"   # nbgrader's default code stub
_TEXT_STUB = "YOUR ANSWER HERE"                                 # ... and its Markdown stub
_HIDDEN = ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS")


@dataclass
class Exercise:
    """One blank: its solution cell and the check cell that follows it."""

    notebook: str
    grade_id: str
    solution: str      # the solution cell's source, reference solution included
    check: str         # the check cell's source


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def strip_solutions(source: str, stub: str = CODE_STUB) -> str:
    """Replace every ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` region (markers included)
    by ``stub``, indented like the BEGIN line, as nbgrader's ``ClearSolutions`` does.

    Args:
        source: a cell's source.
        stub: what replaces each region.

    Raises:
        ValueError: a region that is not closed, or an END without a BEGIN.
    """
    out, inside, indent = [], False, ""
    for line in source.split("\n"):
        mark = line.strip()
        if mark.startswith(BEGIN_SOLUTION):
            if inside:
                raise ValueError(f"nested {BEGIN_SOLUTION!r}")
            inside, indent = True, re.match(r"\s*", line).group(0)
            out += [indent + s for s in stub.split("\n")]
        elif mark.startswith(END_SOLUTION):
            if not inside:
                raise ValueError(f"{END_SOLUTION!r} without {BEGIN_SOLUTION!r}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN_SOLUTION!r} without {END_SOLUTION!r}")
    return "\n".join(out)


def _strip_hidden_tests(source: str) -> str:
    return re.sub(rf"[ \t]*{_HIDDEN[0]}.*?{_HIDDEN[1]}[ \t]*\n?", "", source, flags=re.S)


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student edition of one notebook (a copy): solution regions stubbed, hidden tests
    removed, outputs cleared, locked cells read-only.

    Args:
        nb: a course notebook (nbformat v4).
    """
    nb = copy.deepcopy(nb)
    for i, cell in enumerate(nb.cells):
        meta = _nbgrader(cell)
        has_region = BEGIN_SOLUTION in cell.source
        if has_region:
            stub = CODE_STUB if cell.cell_type == "code" else _TEXT_STUB
            try:
                cell.source = strip_solutions(cell.source, stub)
            except ValueError as err:
                raise ValueError(f"cell {i}: {err}") from None
        elif meta.get("solution"):  # a solution cell without markers: the whole cell is the answer
            cell.source = CODE_STUB if cell.cell_type == "code" else _TEXT_STUB
        if meta.get("grade") and cell.cell_type == "code":
            cell.source = _strip_hidden_tests(cell.source)
        if meta.get("locked"):
            cell.metadata["editable"] = False
            cell.metadata["deletable"] = False
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def exercises(nb: nbformat.NotebookNode, name: str = "") -> list[Exercise]:
    """Every solution cell with code and the graded check cell right after it.

    Args:
        nb: a course notebook.
        name: the notebook's name, for messages.

    Raises:
        ValueError: a solution cell not followed by a locked, graded check cell.
    """
    found = []
    for i, cell in enumerate(nb.cells):
        meta = _nbgrader(cell)
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        nxt = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
        check = _nbgrader(nxt) if nxt is not None else {}
        if not (check.get("grade") and check.get("locked")):
            raise ValueError(f"{name} cell {i} ({meta.get('grade_id')}): a solution cell must be "
                             f"followed by a locked, graded check cell")
        found.append(Exercise(name, meta["grade_id"], cell.source, nxt.source))
    return found


def write_student_edition(out: Path | None = None, notebooks: list[Path] | None = None) -> list[Path]:
    """Write the student edition of every course notebook; returns the written paths.

    Args:
        out: the folder (default ``student/`` at the repository root); replaced notebook by
            notebook, nothing else in it is touched.
        notebooks: the notebooks (default: ``notebooks/NN_*.ipynb``).
    """
    out = Path(out) if out is not None else repo_root() / "student"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks if notebooks is not None else notebook_paths():
        nb = nbformat.read(path, as_version=4)
        target = out / path.name
        nbformat.write(student_notebook(nb), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m vqvae_lib.course.student [--out student]``."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: student/ at the repository root)")
    args = ap.parse_args(argv)
    written = write_student_edition(args.out)
    blanks = sum(len(exercises(nbformat.read(p, as_version=4), p.name)) for p in written)
    print(f"student edition: {len(written)} notebooks, {blanks} blanks -> {written[0].parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

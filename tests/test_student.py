"""The student edition: nbgrader's solution regions and locked check cells in the notebooks,
`make student` cutting the solutions out, and every check cell failing in plain words on a
blank or a typical mistake and passing on the reference solution.

The blanks are tested by executing only the solution cell and its check cell in a fresh
namespace (milliseconds), not whole notebooks; `make run-all` runs the notebooks with the
reference solutions in place.
"""

import json

import nbformat
import pytest

from vqvae_lib.course.runner import notebook_paths
from vqvae_lib.course.student import (
    BEGIN_SOLUTION,
    END_SOLUTION,
    exercises,
    strip_solutions,
    student_notebook,
    write_student_edition,
)

NOTEBOOKS = notebook_paths()
EXERCISES = [ex for p in NOTEBOOKS for ex in exercises(nbformat.read(p, as_version=4), p.name)]
CORE = {"nearest_code", "straight_through", "vq_losses", "ema_update", "causal_mask"}


def _run(solution: str, check: str) -> str:
    """Execute a solution cell and its check cell in a fresh namespace; returns nothing or
    raises what the check raises."""
    namespace: dict = {}
    exec(compile(solution, "<solution cell>", "exec"), namespace)
    exec(compile(check, "<check cell>", "exec"), namespace)
    return ""


def _by_id(grade_id: str):
    return next(ex for ex in EXERCISES if ex.grade_id == grade_id)


def test_the_core_ideas_have_blanks():
    ids = [ex.grade_id for ex in EXERCISES]
    assert len(ids) >= 5 and len(set(ids)) == len(ids), ids
    assert CORE <= set(ids), f"missing blanks: {CORE - set(ids)}"


def test_nbgrader_metadata_is_what_nbgrader_writes():
    ids = []
    for path in NOTEBOOKS:
        for cell in nbformat.read(path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader")
            if meta is None:
                continue
            assert meta["schema_version"] == 3, path.name
            assert {"grade", "solution", "locked", "grade_id"} <= set(meta), (path.name, meta)
            if meta["grade"]:
                assert meta["locked"] and "points" in meta, (path.name, meta)
            if meta["solution"]:
                assert not meta["locked"] and BEGIN_SOLUTION in cell.source, (path.name, meta)
            ids.append(meta["grade_id"])
    assert len(ids) == len(set(ids)), "nbgrader grade_ids must be unique across the course"


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.grade_id)
def test_reference_solution_passes_its_check(ex, capsys):
    _run(ex.solution, ex.check)
    assert "checks pass" in capsys.readouterr().out


@pytest.mark.parametrize("ex", EXERCISES, ids=lambda e: e.grade_id)
def test_blank_fails_with_a_clear_message(ex):
    blank = strip_solutions(ex.solution)
    assert "raise NotImplementedError()" in blank and BEGIN_SOLUTION not in blank
    with pytest.raises(AssertionError, match="is not written yet"):
        _run(blank, ex.check)


# One typical mistake per blank, and words the failure must contain.
MISTAKES = {
    "nearest_code": ("def nearest_code(z, codebook):\n"
                     "    return (z[:, None] - codebook[None]).pow(2).sum(-1).argmax(1)\n",
                     "FARTHEST"),
    "straight_through": ("def straight_through(z_e, z_q):\n    return z_q\n",
                         "must reach z_e unchanged"),
    "vq_losses": ("import torch.nn.functional as F\n"
                  "def vq_losses(z_e, z_q):\n"
                  "    return F.mse_loss(z_q, z_e), F.mse_loss(z_e, z_q.detach())\n",
                  "CODEBOOK loss moved the encoder"),
    "ema_update": ("import torch\n"
                   "def ema_update(cluster_size, embed_sum, z, codes, decay=0.99, eps=1e-5):\n"
                   "    n = torch.bincount(codes, minlength=len(cluster_size)).float()\n"
                   "    s = torch.zeros_like(embed_sum).index_add_(0, codes, z)\n"
                   "    N = decay * cluster_size + (1 - decay) * n\n"
                   "    m = decay * embed_sum + (1 - decay) * s\n"
                   "    return N, m, m / N[:, None]\n",
                   "Laplace smoothing"),
    "causal_mask": ("import torch\n"
                    "def causal_mask(kernel_size, mask_type):\n"
                    "    k, c = kernel_size, kernel_size // 2\n"
                    "    m = torch.ones(k, k)\n"
                    "    m[c + 1:] = 0\n"
                    "    m[c, c + 1:] = 0\n"
                    "    return m\n",
                    "must hide the centre"),
}


@pytest.mark.parametrize("grade_id", sorted(MISTAKES))
def test_typical_mistake_is_named(grade_id):
    source, words = MISTAKES[grade_id]
    with pytest.raises(AssertionError, match=words):
        _run(source, _by_id(grade_id).check)


def test_vq_losses_summed_instead_of_averaged_is_named():
    source = ("def vq_losses(z_e, z_q):\n"
              "    return ((z_q - z_e.detach()) ** 2).sum(), ((z_e - z_q.detach()) ** 2).sum()\n")
    with pytest.raises(AssertionError, match="MEAN squared error"):
        _run(source, _by_id("vq_losses").check)


def test_strip_solutions_keeps_the_indent_and_refuses_open_regions():
    src = f"def f():\n    x = 1\n    {BEGIN_SOLUTION}\n    return 42\n    {END_SOLUTION}\n"
    assert strip_solutions(src) == ("def f():\n    x = 1\n    # YOUR CODE HERE\n"
                                    "    raise NotImplementedError()\n")
    with pytest.raises(ValueError, match="without"):
        strip_solutions(f"{BEGIN_SOLUTION}\nx = 1\n")


def test_make_student_writes_blanks_without_solution_text(tmp_path):
    written = write_student_edition(tmp_path / "student")
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    by_name = {p.name: nbformat.read(p, as_version=4) for p in written}
    for ex in EXERCISES:
        nb = by_name[ex.notebook]
        text = json.dumps([c.source for c in nb.cells])
        region = ex.solution.split(BEGIN_SOLUTION)[1].split(END_SOLUTION)[0]
        for line in (s.strip() for s in region.splitlines()):
            if line:
                assert line not in text, f"{ex.notebook}: solution text left: {line!r}"
        cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == ex.grade_id]
        assert len(cells) == 1 and "raise NotImplementedError()" in cells[0].source
    for nb in by_name.values():
        assert BEGIN_SOLUTION not in json.dumps([c.source for c in nb.cells])
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("locked"):
                assert cell.metadata["editable"] is False and cell.metadata["deletable"] is False
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None


def test_student_notebook_removes_hidden_tests():
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("assert f() == 1\n### BEGIN HIDDEN TESTS\nassert f(2) == 4\n"
                                     "### END HIDDEN TESTS\n")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "grade_id": "t", "points": 1, "schema_version": 3}
    nb.cells = [cell]
    assert student_notebook(nb).cells[0].source == "assert f() == 1\n"

"""The notebooks: committed clean, share the parameter names, and all run under `smoke`."""

import json

import nbformat
import pytest

from vqvae_lib.course.runner import (
    SHARED_PARAMETERS,
    NotebookFailed,
    appendix_paths,
    notebook_paths,
    run_notebook,
)

NOTEBOOKS = notebook_paths()
APPENDICES = appendix_paths()


def test_there_are_numbered_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert names, "no notebooks/NN_*.ipynb found"
    assert names[0].startswith("01_")
    assert len({n[:2] for n in names}) == len(names), f"duplicate numbers in {names}"


@pytest.mark.parametrize("path", NOTEBOOKS + APPENDICES, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs; clear them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS + APPENDICES, ids=lambda p: p.name)
def test_parameters_cell_has_the_shared_names(path):
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected exactly one cell tagged 'parameters'"
    namespace: dict = {}
    exec(cells[0].source, namespace)  # the parameters cell holds plain assignments only
    for name in SHARED_PARAMETERS:
        assert name in namespace, f"{path.name}: parameters cell lacks {name!r}"
    sources = " ".join(c.source.lower() for c in nb.cells if c.cell_type == "markdown")
    assert "summary" in sources and "exercise" in sources, f"{path.name}: needs Summary and Exercises"
    # papermill reads the same names (`papermill --help-notebook`, its warnings in `make run-all`):
    # a comment it cannot parse ("x = 1  # a = b") hides that parameter from it
    from papermill.translators import PythonTranslator

    seen = [p.name for p in PythonTranslator.inspect({"source": cells[0].source})]
    assert seen == [k for k in namespace if not k.startswith("__")], \
        f"{path.name}: papermill cannot parse every line of the parameters cell: it sees {seen}"


def test_runner_names_the_failing_notebook_and_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('preset = "smoke"\ndata_dir = None\nrun_dir = None\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [params, nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("raise ValueError('broken on purpose')")]
    path = tmp_path / "99_broken.ipynb"
    nbformat.write(nb, path)
    with pytest.raises(NotebookFailed) as err:
        run_notebook(path, "smoke", tmp_path / "run")
    msg = str(err.value)
    assert "99_broken.ipynb" in msg and "broken on purpose" in msg and "code cell 3" in msg


_failed: list[str] = []


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_under_smoke_preset(path, tmp_path_factory):
    """Executes every notebook in order in one shared run folder, as `make run-all` does."""
    if _failed:
        pytest.skip(f"an earlier notebook failed: {_failed[0]}")
    run_dir = tmp_path_factory.getbasetemp() / "smoke_run"
    try:
        out = run_notebook(path, "smoke", run_dir)
    except NotebookFailed:
        _failed.append(path.name)
        raise
    executed = nbformat.read(out, as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")


@pytest.mark.slow
def test_the_appendix_runs_on_its_own_and_run_all_leaves_it_out(tmp_path):
    """Notebook 01's volume conversion moved to an appendix: it must still run (on the shared
    FreeSurfer subject, or the demo's template), and ``make run-all`` must not run it."""
    (appendix,) = [p for p in APPENDICES if p.name == "appendix_own_volumes.ipynb"]
    assert appendix not in NOTEBOOKS
    out = run_notebook(appendix, "smoke", tmp_path / "run")
    assert (tmp_path / "run" / "figures" / "appendix_own_volume.png").is_file()
    assert any(c.get("outputs") for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code")

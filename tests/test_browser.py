"""The interactive widgets in a real JupyterLab, driven by headless Chromium (marker ``browser``).

For every notebook in ``LIVE``: train what it needs under the ``smoke`` preset (notebook 03's
``train`` call in-process, other notebooks with papermill; into a temporary run folder), write a parameter-injected copy of the notebook into a temporary
folder, open THAT in a private JupyterLab, wait for the kernel, Run All, then move every control
of every widget view (sliders by keyboard, by drag and by typing into the readout; number boxes
by typing; dropdowns; buttons) and check that the view's image changed and that no error showed
up in the outputs, the browser console or the server log. Screenshots and logs of a failing run
go to ``runs/browser/<notebook>/``.

``VQVAE_BROWSER_RUN_DIR=<run folder with checkpoints/best.pt>`` skips the smoke training and
uses that model instead (``docs/sliders.png`` was taken this way from a short ``cpu`` run).
Adding a notebook (e.g. 06's live sampler) is one ``LiveNotebook`` line below.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from lab_driver import LabNotebook
from lab_server import JupyterLab, artifacts_dir, browser_unavailable, launch_chromium

from vqvae_lib.course.runner import notebook_paths, run_notebook
from vqvae_lib.data import resolve_data_dir
from vqvae_lib.paths import repo_root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Every move must redraw the view visibly: at least 0.05% of its image pixels (a few hundred)
# change. Most moves show another slice or code and change far more (typically 15-40%); the
# swap view's code-B slider can change little more than the caption when the two codes look
# alike, so the bulk is checked on the median.
MIN_CHANGE, MIN_MEDIAN_CHANGE = 0.0005, 0.05


@dataclass
class LiveNotebook:
    """A notebook with live widget views to drive.

    name: the notebook's file name without ``.ipynb``; prepare: notebooks (name prefixes) that
    must run first under ``smoke`` to produce what it loads; params: extra parameters that keep
    it short; views: how many widget views (outputs with an image) it must show.
    """

    name: str
    prepare: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    views: int = 1
    check: Callable | None = None      # check(views) right after Run All, for notebook specifics


def _check_04(views) -> None:
    """The code-swap view opens on suggest_swap's pair and names it (issue 13)."""
    caption = views[2].locator(".widget-html").first.inner_text()
    assert caption.startswith("swapped ") and " code " in caption, caption


LIVE = [
    LiveNotebook("04_codebook_analysis", prepare=("03",), views=3, check=_check_04,
                 params=dict(max_slices=16, experiment_minutes=0.05)),
    LiveNotebook("06_prior_and_generation", prepare=("03",), views=1, params=dict(n_samples=16)),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """The run folder the live notebooks read (smoke-trained unless VQVAE_BROWSER_RUN_DIR)."""
    reason = browser_unavailable()
    if reason:                        # only reached in CI, where a skip would hide a break
        pytest.fail(f"CI must run the browser tests, but {reason}")
    given = os.environ.get("VQVAE_BROWSER_RUN_DIR")
    return Path(given).resolve() if given else tmp_path_factory.mktemp("browser_run")


_prepared: set[str] = set()


def _train_smoke(run_dir: Path, data_dir: str) -> None:
    """What notebook 03 leaves behind (checkpoints, history), without its figures: the same
    ``train`` call under the same preset, in this process (faster than a kernel)."""
    from vqvae_lib.config import get_config
    from vqvae_lib.train import train

    train(get_config("smoke"), data_dir=data_dir, run_dir=run_dir, verbose=False)


FAST_PREPARE = {"03": _train_smoke}     # other prefixes run their notebook with papermill


def _prepare(run_dir: Path, prefixes: tuple[str, ...]) -> None:
    if os.environ.get("VQVAE_BROWSER_RUN_DIR"):
        return
    data_dir = str(resolve_data_dir(None)[0])
    for prefix in prefixes:
        if prefix in _prepared:
            continue
        if prefix in FAST_PREPARE:
            FAST_PREPARE[prefix](run_dir, data_dir)
        else:
            book = next(p for p in notebook_paths() if p.name.startswith(prefix))
            run_notebook(book, "smoke", run_dir, data_dir=data_dir)
        _prepared.add(prefix)


def injected_copy(notebook: Path, folder: Path, **params) -> Path:
    """Write ``notebook`` with papermill's injected-parameters cell into ``folder``."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = parameterize_notebook(load_notebook_node(str(notebook)), params)
    out = folder / notebook.name
    nbformat.write(nb, out)
    return out


def _slider_target(handle) -> int:
    """A value for a slider's readout that differs from its current one."""
    lo, hi, now = (int(float(handle.get_attribute(a)))
                   for a in ("aria-valuemin", "aria-valuemax", "aria-valuenow"))
    target = lo + (hi - lo) // 3
    return target if target != now else min(hi, now + 1) if now < hi else now - 1


def drive_view(L: LabNotebook, view) -> list[tuple[str, float]]:
    """Move every control of one widget view; return (what, image change) per move."""
    moves = []
    for i in range(view.locator(".noUi-handle").count()):
        moves.append((f"slider {i} by keyboard", L.slider_by_keyboard(view, i)))
        moves.append((f"slider {i} by drag", L.slider_by_drag(view, i)))
        target = _slider_target(view.locator(".noUi-handle").nth(i))
        moves.append((f"slider {i} by typing {target}", L.slider_by_typing(view, target, i)))
    for i in range(view.locator(".widget-text input").count()):
        box = view.locator(".widget-text input").nth(i)
        now, hi = int(float(box.input_value())), box.get_attribute("max")
        target = now + 1 if hi is None or now + 1 <= int(float(hi)) else now - 1
        moves.append((f"text box {i} by typing {target}", L.text_by_typing(view, target, i)))
    for i in range(view.locator(".widget-dropdown select").count()):
        moves.append((f"dropdown {i} by keyboard", L.dropdown_by_keyboard(view, i)))
    for i in range(view.locator("button.jupyter-button").count()):
        moves.append((f"button {i} click", L.button_click(view, i)))
    return moves


@contextlib.contextmanager
def lab_notebook(lab_root: Path, name: str, log: Path, out: Path):
    """JupyterLab serving ``lab_root`` with notebook ``name`` in headless Chromium, as a
    :class:`LabNotebook` (not yet opened). The server log must stay free of errors; on any failure
    the page's screenshot, console and server log go to ``out``."""
    from playwright.sync_api import sync_playwright

    with JupyterLab(lab_root, log, pythonpath=str(repo_root())) as lab, sync_playwright() as p:
        browser = launch_chromium(p)
        L = LabNotebook(browser.new_page(viewport={"width": 1280, "height": 900}), lab, name)
        try:
            yield L
            assert not lab.log_errors(), f"JupyterLab server log errors: {lab.log_errors()}"
        except BaseException:
            L.save_failure(out)
            raise
        finally:
            browser.close()


@pytest.mark.parametrize("live", LIVE, ids=lambda n: n.name)
def test_widgets_work_in_jupyterlab(live: LiveNotebook, run_dir, tmp_path):
    t0 = time.monotonic()
    _prepare(run_dir, live.prepare)
    t_prepare = time.monotonic() - t0
    lab_root = tmp_path / "lab"
    lab_root.mkdir()
    params = dict(preset="smoke", data_dir=str(resolve_data_dir(None)[0]), run_dir=str(run_dir),
                  seed=0, **live.params)
    injected_copy(repo_root() / "notebooks" / f"{live.name}.ipynb", lab_root, **params)
    out = artifacts_dir(live.name)
    for old in out.glob("*"):
        old.unlink() if old.is_file() else shutil.rmtree(old)
    marks = {}
    with lab_notebook(lab_root, f"{live.name}.ipynb", tmp_path / "jupyterlab.log", out) as L:
        L.open()
        marks["lab_open_s"] = time.monotonic() - t0
        L.run_all()
        marks["run_all_s"] = time.monotonic() - t0
        assert not L.output_errors(), f"errors after Run All: {L.output_errors()}"
        views = L.widget_views()
        assert len(views) == live.views, f"expected {live.views} widget views"
        L.screenshot(views[0], out / "first_view.png")
        if live.check:
            live.check(views)
        moves = {}
        for k, view in enumerate(views):
            for what, change in drive_view(L, view):
                moves[f"view {k}: {what}"] = round(change, 4)
        marks["moves_s"] = time.monotonic() - t0
        assert len(moves) >= len(views)
        weak = {m: c for m, c in moves.items() if c < MIN_CHANGE}
        assert not weak, f"the image did not change (< {MIN_CHANGE:.2%} of pixels): {weak}"
        median = sorted(moves.values())[len(moves) // 2]
        assert median >= MIN_MEDIAN_CHANGE, f"most moves hardly changed the image: {moves}"
        assert not L.output_errors(), f"errors after moving the controls: {L.output_errors()}"
        assert not L.console_errors, f"browser console errors: {L.console_errors}"
    timing = {"prepare_s": round(t_prepare, 1), **{k: round(v, 1) for k, v in marks.items()},
              "total_s": round(time.monotonic() - t0, 1)}      # seconds since the test began
    (out / "result.json").write_text(json.dumps({"moves": moves, **timing}, indent=1))
    print(f"{live.name}: {len(moves)} moves, min change {min(moves.values()):.1%}, {timing}")


# ---- the student edition, as a student meets it ----------------------------------------------
_JS_CELL = """(i) => {
  const c = window.jupyterapp.shell.currentWidget.content.widgets[i];
  const text = c.model.outputs.toJSON().map(o => o.text || (o.data && o.data['text/plain']) ||
                                              `${o.ename}: ${o.evalue}`).join('');
  return {count: c.model.executionCount, source: c.model.sharedModel.getSource(), text,
          error: c.model.outputs.toJSON().some(o => o.output_type === 'error'),
          editable: c.model.getMetadata('editable'), readOnly: c.readOnly};
}"""
_JS_RUN = """([i, command]) => {
  const panel = window.jupyterapp.shell.currentWidget;
  panel.content.activeCellIndex = i;
  return window.jupyterapp.commands.execute(command);
}"""


def test_a_student_fills_a_blank_in_jupyterlab(tmp_path):
    """``make student``'s notebook 02 in JupyterLab: run up to the first blank; its check cell is
    read-only and fails in plain words; paste the reference solution into the blank, run it and
    the check again: the check passes. Screenshots of both go to ``runs/browser/student/``."""
    from vqvae_lib.course.student import exercises, write_student_edition

    book = repo_root() / "notebooks" / "02_model_building.ipynb"
    (student,) = write_student_edition(tmp_path / "student", [book])
    lab_root = tmp_path / "lab"
    lab_root.mkdir()
    copy = injected_copy(student, lab_root, preset="smoke", data_dir=str(resolve_data_dir(None)[0]),
                         run_dir=str(tmp_path / "run"), seed=0)
    cells = nbformat.read(copy, as_version=4).cells
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in cells]
    blank, check = ids.index("nearest_code"), ids.index("check_nearest_code")
    assert check == blank + 1 and "NotImplementedError" in cells[blank].source
    solution = exercises(nbformat.read(book, as_version=4))[0].solution
    out = artifacts_dir("student")
    with lab_notebook(lab_root, copy.name, tmp_path / "jupyterlab.log", out) as L:
        page = L.page

        def run(i: int, command: str = "notebook:run-cell", watch: int | None = None) -> dict:
            """Run ``command`` with cell ``i`` active; wait until cell ``watch`` (default ``i``)
            has a new execution count and the kernel is idle."""
            watch = i if watch is None else watch
            before = page.evaluate(_JS_CELL, watch)["count"]
            page.evaluate(_JS_RUN, [i, command])
            L._wait(lambda s: s and s["kernel"] == "idle" and s["pending"] == 0
                    and page.evaluate(_JS_CELL, watch)["count"] not in (None, before), 180,
                    f"cell {watch} to run")
            return page.evaluate(_JS_CELL, watch)

        L.open()
        above = max(i for i, c in enumerate(cells[:blank]) if c.cell_type == "code")
        assert not run(blank, "notebook:run-all-above", watch=above)["error"]   # set-up cells
        assert not run(blank)["error"]      # it defines the function; calling it raises
        failing = run(check)
        assert failing["editable"] is False and failing["readOnly"], "the check cell is editable"
        assert failing["error"] and "`nearest_code` is not written yet" in failing["text"], failing
        page.locator(".jp-Notebook .jp-Cell").nth(check).screenshot(path=str(out / "check_fails.png"))
        editor = page.locator(".jp-Notebook .jp-Cell").nth(blank).locator(".cm-content")
        editor.click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(solution)                           # as a paste
        assert page.evaluate(_JS_CELL, blank)["source"] == solution
        assert not run(blank)["error"]
        passing = run(check)
        assert not passing["error"] and "all" in passing["text"] and "checks pass" in passing["text"], passing
        page.locator(".jp-Notebook .jp-Cell").nth(check).screenshot(path=str(out / "check_passes.png"))

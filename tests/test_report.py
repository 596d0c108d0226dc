"""The offline HTML report (``python -m vqvae_lib.course.report``): built from a small fake run folder,
then opened in headless Chromium with every non-file request blocked (marker ``browser``)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from vqvae_lib.course import report as R
from vqvae_lib.course import report_export as RE
from vqvae_lib.course import report_numbers as RN

WIDGET_CELL = """\
import io
import ipywidgets as W
import numpy as np
from PIL import Image
buf = io.BytesIO()
Image.fromarray((np.arange(48 * 64) % 251).reshape(48, 64).astype("uint8")).save(buf, "png")
W.VBox([W.IntSlider(value=3, max=9, description="slice"), W.Image(value=buf.getvalue())])"""


def _executed_notebook(path: Path) -> Path:
    """A notebook with a widget view and a static PNG, executed so that its widget state is saved."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · A fake notebook\n\nEnergy $E = mc^2$."),
                nbformat.v4.new_code_cell(WIDGET_CELL),
                nbformat.v4.new_code_cell("from IPython.display import Image as Png\n"
                                          "Png(data=buf.getvalue())")]      # a static twin
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fake_run")
    (run / "notebooks").mkdir()
    (run / "figures").mkdir()
    (run / "prior").mkdir()
    _executed_notebook(run / "notebooks" / "99_fake.ipynb")
    Image.fromarray(np.full((30, 40), 200, np.uint8)).save(run / "figures" / "99_grey.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(run / "figures" / "losses.png")
    (run / "metrics.json").write_text(json.dumps({
        "n_images": 12, "split": "test", "source": "demo", "image_size": 64,
        "ssim_gaussian": {"mean": 0.8123, "std": 0.01, "p5": 0.79}, "psnr_db": {"mean": 27.5},
        "bits_per_pixel": 0.5625, "codes_used": 30, "codebook_size": 32,
        "ssim_target": 0.6, "passed": True}))
    (run / "prior" / "metrics.json").write_text(json.dumps({"test_bits": 3.456, "uniform": 5.0}))
    (run / "history.json").write_text(json.dumps([{"epoch": 1, "seconds": 60, "val_ssim": 0.7},
                                                  {"epoch": 2, "seconds": 120, "val_ssim": 0.8}]))
    bench = tmp_path_factory.mktemp("bench")
    (bench / "results.json").write_text(json.dumps({"date": "2026-01-01", "summary": {
        "speedup_to_threshold": 4.2}, "results": {"ours": {"images_per_s": 114.0}}}))
    R.build_report(run, bench_dir=bench)
    return run


def test_report_holds_numbers_links_and_figures(fake_run):
    out = fake_run / "report"
    index = (out / "index.html").read_text()
    for number in ("0.812", "27.500 dB", "0.5625 bits/pixel", "30 of 32", "3.46 bits/cell",
                   "0.800 at epoch 2", "speedup_to_threshold", "4.200", "SSIM &gt; 0.6: met"):
        assert number in index, f"{number!r} missing from index.html"
    assert "href='notebooks/99_fake.html'" in index and "99 · A fake notebook" in index
    assert "1 live views" in index
    for fig in ("99_grey.png", "losses.png"):
        assert f"src='figures/{fig}'" in index and (out / "figures" / fig).stat().st_size > 0
    page = (out / "notebooks" / "99_fake.html").read_text()
    assert "../assets/widgets/embed.js" in page and "../assets/mathjax/tex-chtml-full.js" in page
    assert "application/vnd.jupyter.widget-state+json" in page      # the saved widget state
    assert page.count("vqvae-live-note") >= 1
    for cdn in ("unpkg.com", "cdnjs.cloudflare.com", "cdn.jsdelivr.net", "require.min.js"):
        assert cdn not in page, f"the notebook page still loads {cdn}"
    assert (out / "assets" / "widgets" / "embed.js").is_file()
    assert (out / "assets" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").is_dir()


def test_missing_files_are_named_and_an_empty_run_is_refused(tmp_path):
    (tmp_path / "run" / "figures").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "run" / "figures" / "03_x.png")
    index = R.build_report(tmp_path / "run", bench_dir=tmp_path / "none").read_text()
    assert "no metrics.json: run notebook 05" in index and "no prior/metrics.json" in index
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="make run-all"):
        R.build_report(tmp_path / "empty")
    assert R.main(["--run-dir", str(tmp_path / "empty")]) == 1


def test_live_notes_mark_each_widget_view_once():
    nb = nbformat.v4.new_notebook()
    view = nbformat.v4.new_output("display_data", data={
        RE.WIDGET_VIEW: {"model_id": "x"}, "text/plain": "VBox()"})
    text = nbformat.v4.new_output("stream", text="hello")
    nb.cells = [nbformat.v4.new_code_cell("v", outputs=[view]),
                nbformat.v4.new_code_cell("t", outputs=[text])]
    assert RE.add_live_notes(nb) == 1
    assert len(nb.cells[0].outputs) == 2 and "vqvae-live-note" in \
        nb.cells[0].outputs[0]["data"]["text/html"]
    assert nb.cells[1].outputs == [text]


def test_vendored_assets_are_small_and_licensed():
    files = [p for p in RE.ASSETS.rglob("*") if p.is_file()]
    assert all(p.stat().st_size < 2_000_000 for p in files), "a vendored file is over 2 MB"
    names = {p.relative_to(RE.ASSETS).as_posix() for p in files}
    for needed in ("widgets/embed.js", "widgets/LICENSE", "mathjax/tex-chtml-full.js",
                   "mathjax/LICENSE", "README.md", "template/offline/index.html.j2"):
        assert needed in names


@pytest.mark.browser
def test_report_reads_offline_in_chromium(fake_run):
    from lab_server import browser_unavailable, launch_chromium
    from playwright.sync_api import sync_playwright

    reason = browser_unavailable()
    if reason:                                  # only reached in CI
        pytest.fail(f"CI must run the browser tests, but {reason}")
    out = fake_run / "report"
    pages = [out / "index.html", *sorted((out / "notebooks").glob("*.html"))]
    with sync_playwright() as p:
        browser = launch_chromium(p)
        ctx = browser.new_context(offline=True)
        blocked: list[str] = []

        def only_files(route):
            if route.request.url.startswith(("file:", "data:", "blob:")):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()
        ctx.route("**/*", only_files)
        try:
            for path in pages:
                page, failed, errors = ctx.new_page(), [], []
                page.on("requestfailed", lambda r, f=failed: f.append(f"{r.url}: {r.failure}"))
                page.on("console", lambda m, e=errors: m.type == "error" and e.append(m.text))
                page.on("pageerror", lambda err, e=errors: e.append(str(err)))
                page.goto(path.as_uri(), wait_until="load")
                if path.parent.name == "notebooks":     # widgets and MathJax render after load
                    page.wait_for_selector(".jupyter-widgets img.widget-image", timeout=30_000)
                    page.wait_for_selector("mjx-container", timeout=30_000)
                    assert page.locator(".widget-slider, .widget-hslider").count() >= 1
                page.wait_for_function("() => [...document.images].every(i => i.complete)")
                broken = page.evaluate("() => [...document.images].filter(i => "
                                       "i.naturalWidth === 0).map(i => i.src.slice(0, 80))")
                n_images = page.evaluate("() => document.images.length")
                assert n_images >= 2 and not broken, f"{path.name}: images not loaded: {broken}"
                assert not failed, f"{path.name}: failed requests {failed}"
                assert not errors, f"{path.name}: console errors {errors}"
                page.close()
        finally:
            browser.close()
    assert not blocked, f"the report asked the network for {blocked}"


def test_every_benchmark_json_of_the_repository_gets_a_section(tmp_path):
    """The benchmarks differ in shape: the report lists an explicit set of them, shows each one's
    result numbers (not only its metadata) and never a path of the machine it was measured on;
    every other JSON under benchmarks/ is named in NOT_REPORTED with a reason."""
    import re

    from vqvae_lib.paths import repo_root

    bench = repo_root() / "benchmarks"
    sections = RN.key_numbers(tmp_path, bench)
    by_source = {s.source: s for s in sections if s.title.startswith("Benchmark")}
    for path in bench.glob("*.json"):
        assert path.name in RN.BENCHMARKS or path.name in RN.NOT_REPORTED, path.name
        if path.name in RN.BENCHMARKS:
            sec = by_source[f"benchmarks/{path.name}"]
            results = [v for k, v in sec.rows if k != "measured"]
            assert results and any(re.search(r"\d\.\d", v) for v in results), path.name
            assert not any(re.search(r"(^|\s)/(tmp|work|home|root)/", v) for _, v in sec.rows)


def test_generation_metrics_are_reported_beside_their_floors(tmp_path):
    (tmp_path / "prior").mkdir()
    (tmp_path / "prior" / "generation.json").write_text(json.dumps({
        "prior_kind": "pixelcnn", "prior_cond_bins": 4, "temperature": 1.0, "n_generated": 64,
        "n_real": 64, "one_nn_shape": {"generated": 0.734, "floor": 0.828},
        "tissue_w1": {"CSF": {"generated": 0.0142, "floor": 0.0067}}}))
    sec = next(s for s in RN.key_numbers(tmp_path, tmp_path / "none") if "Generated" in s.title)
    text = " ".join(f"{k} {v}" for k, v in sec.rows)
    assert "0.734 (real vs real: 0.828)" in text and "0.0142 (floor 0.0067)" in text

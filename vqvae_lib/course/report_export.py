"""Executed notebooks -> HTML pages that read offline, saved widgets included.

``jupyter nbconvert --to html`` loads require.js, the widget manager and MathJax from public CDNs,
so on a machine without network every widget area is blank. Here the same exporter uses the
``offline`` template and the files vendored in ``report_assets/`` (see its README for sources,
versions and licences), copied next to the pages. Each live widget view also gets a note saying
that it needs a running kernel and that the static twin below it shows fixed positions.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat

__all__ = ["ASSETS", "WIDGET_VIEW", "LIVE_NOTE", "copy_assets", "add_live_notes",
           "export_notebook"]

ASSETS = Path(__file__).with_name("report_assets")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LIVE_NOTE = (
    '<div class="vqvae-live-note" style="border-left:4px solid #e6a700;background:#fff8e1;'
    'padding:6px 10px;margin:4px 0;font-size:13px">'
    "<b>Live view: needs a running Python kernel.</b> This page shows the view as it was when "
    "the notebook ran; moving its controls here redraws nothing. The <b>static twin</b> in the "
    "next cell shows the same figure at fixed positions. To use the controls, open the notebook "
    "in JupyterLab (<code>make lab</code>) and run it.</div>")


def copy_assets(report_dir: Path) -> Path:
    """Copy the vendored widget manager and MathJax into ``report_dir/assets``; return it.

    Args:
        report_dir: the report folder.
    """
    dest = Path(report_dir) / "assets"
    for sub in ("widgets", "mathjax"):
        shutil.copytree(ASSETS / sub, dest / sub, dirs_exist_ok=True)
    shutil.copy(ASSETS / "README.md", dest / "README.md")
    return dest


def add_live_notes(nb: nbformat.NotebookNode) -> int:
    """Put :data:`LIVE_NOTE` above every widget view output; return how many were marked.

    Args:
        nb: an executed notebook (changed in place).
    """
    marked = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if WIDGET_VIEW in out.get("data", {}):
                outputs.append(nbformat.v4.new_output("display_data",
                                                      data={"text/html": LIVE_NOTE}))
                marked += 1
            outputs.append(out)
        cell.outputs = outputs
    return marked


def export_notebook(executed: Path, out_html: Path, assets_url: str) -> dict:
    """Write one executed notebook as an offline HTML page.

    Args:
        executed: the executed ``.ipynb`` (papermill saves its widget state in the metadata).
        out_html: the page to write.
        assets_url: the URL of the copied ``assets`` folder relative to the page
            (e.g. ``"../assets"``).

    Returns:
        ``{"widgets": saved widget models, "live_views": views marked as needing a kernel}``.
    """
    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nbformat.read(executed, as_version=4))
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    live = add_live_notes(nb)
    exporter = HTMLExporter(template_name="offline",
                            extra_template_basedirs=[str(ASSETS / "template")])
    exporter.widget_renderer_url = f"{assets_url}/widgets/embed.js"
    exporter.require_js_url = ""              # not used by the offline template
    body, _ = exporter.from_notebook_node(
        nb, resources={"report_assets_url": assets_url,
                       "metadata": {"name": Path(executed).stem}})
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(body, encoding="utf-8")
    return {"widgets": len(state.get("state", {})), "live_views": live}

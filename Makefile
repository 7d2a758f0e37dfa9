# One command sets everything up and runs the main job; one sets everything up and runs the tests.
#   make demo   venv + install, generate the sample set, preprocess, fit the offline demo detector, infer
#   make test   venv + install, pytest (offline, CPU)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Nothing here reaches the Hugging Face hub: fail fast instead of retrying.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install sample demo test clean-runs

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

sample: install
	$(BIN)/python -m lib.sample --out data/sample

demo: sample
	$(BIN)/papermill --log-level WARNING notebooks/preprocess.ipynb data/sample/preprocess.ipynb \
		-f params/demo.yaml -p data_dir data/sample/test -p size 224
	$(BIN)/python -m lib.demo_model --data data/sample/fit --out models/demo-detector --frames 40
	mkdir -p submissions/demo
	$(BIN)/papermill --log-level WARNING notebooks/infer.ipynb submissions/demo/infer.ipynb -f params/demo.yaml
	@echo "submission: submissions/demo/submission.csv  (run record: submissions/demo/run.json, table: EXPERIMENTS.md)"

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean-runs:
	rm -rf cache submissions/*/ data/sample models/demo-detector

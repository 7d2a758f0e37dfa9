# One command sets everything up and runs the main job; one sets everything up and runs the tests.
#   make demo   venv + install, generate the sample set, fit the offline demo detector (once), preprocess, infer
#   make test   venv + install, pytest (offline, CPU)
#   make detector    the recommended detector from ../shared/data (leave-one-source-out validated), models/detector
#                    (DETECTOR_ARGS='-y "data: [data/my-set]"' passes papermill arguments, e.g. other folders)
#   make train-demo  the four training strategies on the sample set, then infer with the LoRA model (CPU: minutes;
#                    TRAIN_ARGS="-p epochs 1" passes papermill arguments to each training run)
#   make lab    venv + install, the sample set and demo detector the notebooks' defaults use, the kernel
#               "deepfake-kit", then JupyterLab on 127.0.0.1 with a token (PORT=8888 to choose the port,
#               LAB_ARGS="--no-browser --token T" passed to python -m lib.review.lab)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Nothing here reaches the Hugging Face hub: fail fast instead of retrying.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install sample demo-model demo lab detector train-demo test clean-runs

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

sample: install
	$(BIN)/python -m lib.corpora.sample --out data/sample

# The offline demo detector, fitted once (fit.json is written last, after the reload check); delete
# models/demo-detector to fit it again.
# DEMO_MODEL_FRAMES: frames per video it is fitted on.
DEMO_MODEL := models/demo-detector/fit.json
DEMO_MODEL_FRAMES ?= 40
demo-model: $(DEMO_MODEL)
$(DEMO_MODEL): | sample
	$(BIN)/python -m lib.training.demo_model --data data/sample/fit --out models/demo-detector --frames $(DEMO_MODEL_FRAMES)

demo: sample demo-model
	$(BIN)/papermill --log-level WARNING notebooks/preprocess.ipynb data/sample/preprocess.ipynb \
		-f params/demo.yaml -p data_dir data/sample/test -p size 224
	mkdir -p submissions/demo
	$(BIN)/papermill --log-level WARNING notebooks/infer.ipynb submissions/demo/infer.ipynb -f params/demo.yaml
	@echo "submission: submissions/demo/submission.csv  (run record: submissions/demo/run.json, table: EXPERIMENTS.md)"

lab: sample demo-model
	$(BIN)/python -m lib.review.lab $(if $(PORT),--port $(PORT)) $(LAB_ARGS)

# The recommended detector from every ../shared/data folder with a labels.csv (params/detector-train.yaml): trace
# signals, leave-one-source-out figures in submissions/detector/, the model in models/detector/ (infer:
# params/detector.yaml). Prints its wall time (the budget: 60 min on a 2-core CPU).
detector: install
	mkdir -p submissions/detector
	@t0=$$(date +%s); $(BIN)/papermill --log-level WARNING notebooks/train.ipynb submissions/detector/train.ipynb \
		-f params/detector-train.yaml $(DETECTOR_ARGS) && echo "make detector: $$(( $$(date +%s) - t0 )) s; model: models/detector," \
		"figures: submissions/detector/ (loo_by_group.csv, loo_threshold_rules.csv, run.json), infer with" \
		"-f params/detector.yaml"

TRAIN := $(BIN)/papermill --log-level WARNING notebooks/train.ipynb
train-demo: sample
	mkdir -p submissions/train-fe submissions/train-ft submissions/train-lora submissions/train-distill submissions/train-infer
	$(TRAIN) submissions/train-fe/train.ipynb -p strategy feature_extractor -p exp train-fe $(TRAIN_ARGS)
	$(TRAIN) submissions/train-ft/train.ipynb -p strategy fine_tune -y "frozen_blocks: [stem, 0, 1, 2]" -p lr 0.0003 \
		-p exp train-ft $(TRAIN_ARGS)
	$(TRAIN) submissions/train-lora/train.ipynb -p strategy lora -p self_blend True -p exp train-lora $(TRAIN_ARGS)
	$(TRAIN) submissions/train-distill/train.ipynb -p strategy distill -p teacher models/train-ft -p backbone resnet_tiny \
		-p lr 0.003 -p exp train-distill $(TRAIN_ARGS)
	$(BIN)/papermill --log-level WARNING notebooks/infer.ipynb submissions/train-infer/infer.ipynb -f params/demo.yaml \
		-p model models/train-lora -p threshold model -p exp train-infer
	@echo "models: models/train-{fe,ft,lora,distill}/; runs: submissions/train-*/ (table: EXPERIMENTS.md)"

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean-runs:
	rm -rf cache submissions/*/ data/sample models/demo-detector models/train-*

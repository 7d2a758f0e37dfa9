"""Deepfake-detection competition kit: the library the notebooks import.

The folder line is the shipping line: the top-level ``lib/*.py`` modules are exactly what a scoring-server bundle
ships (``lib.bundle.lib_closure``; ``tests/test_layout.py`` checks it), and everything that never ships lives in a
subpackage named for what it does.

Shipped, one concern each, from the bottom of the house up:
    paths        every folder the kit reads or writes
    errors       ParameterError, MediaError, ModelLoadError (a ParameterError), DiskFullError
    names        file names of any bytes in UTF-8 files: names that are not UTF-8 escaped, CSV quoting
    atomic       atomic writes with the user's umask; a full disk raised as DiskFullError
    checks       value checks: (name, value) → the value to use, or a ParameterError naming it and its valid values
    registry     name -> object registries that fail loudly on unknown names
    progress     the one tqdm of every loop: widgets in JupyterLab, text under papermill, in scripts and logs
    devices      devices and precisions: what a run may ask for, what it gets, the autocast it needs
    media        list the media files of a flat data folder; links that leave it
    frames       sample and read frames from videos and images
    faces        face detectors, the crop every stage uses
    tta          test-time augmentation views
    aggregate    per-file score from per-frame scores
    options      the option types (CropOptions, PrepSettings, InferOptions): each field a parameter, with its check
    filerecord   the typed per-file record: cache, pipeline, plots, training data and bundle share it
    cache        on-disk crop cache keyed by file content and preprocessing settings
    linear_probe the linear-probe architecture (frozen timm backbone + one linear layer) as a transformers model
    backbones    backbones by name (timm EfficientNet-Lite0/1/2 with offline ImageNet weights, ...), data configs
    models       load Hugging Face image classifiers, their classes, model_input of crops, P(fake) of a batch
    engines      where jobs run: this process, worker processes or a cluster (loaded by name), one protocol;
                 jobs in order with a bounded look-ahead, a dead or hung worker replaced, workers die with the notebook
    pipeline     preprocess files into cached crops (on an engine), predict files from crops
    shards       a deterministic share of a data folder (shard: i/n), and what a merge checks of the shards' runs
    submission   write and validate submission.csv (names UTF-8 cannot hold are named, not lost; merge of shards)
    predict      the one road from media to predictions.csv + submission.csv (infer, bundle, check, bench)
    metrics      macro F1, confusion matrix, AUC, threshold tuning, per-source figures, inverted-label check
    experiments  run records, EXPERIMENTS.md, duplicate-submission check, local-vs-public plot
    parameters   each notebook's parameters declared once (a Schema): collected, checked before any work starts,
                 written as its parameters cell and docs/parameters.md (python -m lib.sweep.notebooks)

Never shipped:
    bundle/      scoring-server bundles: build, check, projection (``python -m lib.bundle``; ``lib.kernel`` is an alias)
    scale/       past one machine: the Dask engine (cluster), box reuse for training preprocessing (boxreuse)
    corpora/     importers of public corpora (FF++, Celeb-DF, DFDC, DF40, folders) and the generated sample set
    review/      EDA, error analysis, figures, ensembles of runs, JupyterLab (eda's and ensemble's schemas)
    training/    everything train.ipynb needs (its schema and TrainOptions: parameters), the offline demo detector
    sweep/       Optuna studies over a notebook's parameters: space, trials run by papermill, resume, reports;
                 every notebook's schema gathered (notebooks: parameters cells and docs/parameters.md)

Submodules are imported explicitly (``from lib import frames``) so that importing ``lib`` stays cheap.
"""

import warnings

__version__ = "0.1.0"

# The kit's own bars come from lib.progress and never warn. Other libraries' tqdm.auto bars (transformers') warn
# "IProgress not found" in a JupyterLab kernel without ipywidgets (an environment other than requirements.txt's) and
# then print text bars, which is fine there.
warnings.filterwarnings("ignore", message="IProgress not found")

from . import progress as _progress  # noqa: E402,F401  (under papermill: text bars for other libraries too)

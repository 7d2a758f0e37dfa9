"""Deepfake-detection competition kit: the library the notebooks import.

Modules, one concern each, from the bottom of the house up:
    paths        every folder the kit reads or writes
    errors       ParameterError, MediaError, ModelLoadError (a ParameterError), DiskFullError
    names        file names of any bytes in UTF-8 files: names that are not UTF-8 escaped, CSV quoting
    atomic       atomic writes with the user's umask; a full disk raised as DiskFullError
    checks       value checks for run parameters (used once, at each notebook's edge, and by the settings types)
    registry     name -> object registries that fail loudly on unknown names
    progress     the one tqdm of every loop: widgets in JupyterLab, text under papermill, in scripts and logs
    devices      devices and precisions: what a run may ask for, what it gets, the autocast it needs
    media        list the media files of a flat data folder; links that leave it
    frames       sample and read frames from videos and images
    faces        face detectors, the crop every stage uses
    tta          test-time augmentation views
    aggregate    per-file score from per-frame scores
    options      the settings types: crop settings (PrepSettings) and inference options (InferOptions)
    filerecord   the typed per-file record: cache, pipeline, plots, training data and bundle share it
    cache        on-disk crop cache keyed by file content and preprocessing settings
    backbones    backbones by name (timm EfficientNet-Lite0/1/2 with offline ImageNet weights, ...), data configs
    models       load Hugging Face image classifiers, P(fake) of a batch of crops
    pipeline     preprocess files into cached crops (worker processes), predict files from crops
    cluster      preprocessing as tasks on a Dask cluster (cluster: local:N | tcp://host:port); never in the bundle
    boxreuse     training preprocessing: an original's face boxes reused for its fakes, checked on a key frame
    shards       a deterministic share of a data folder (shard: i/n), and what a merge checks of the shards' runs
    submission   write and validate submission.csv (names UTF-8 cannot hold are named, not lost; merge of shards)
    predict      the one road from media to predictions.csv + submission.csv (infer, bundle, check, bench)
    metrics      macro F1, confusion matrix, AUC, threshold tuning, per-source figures, inverted-label check
    experiments  run records, EXPERIMENTS.md, duplicate-submission check, local-vs-public plot
    plots        probability histograms and crop grids
    settings     each notebook's parameter keys; collect and check them before any work starts
    eda          what a data folder holds and how it compares with the competition's test set
    ensemble     combine runs' predictions; cross-validated weight and threshold fits; the one-model rule
    kernel       scoring-server bundles: build and check them locally
    datasets     importers of public corpora (FF++, Celeb-DF, DFDC, DF40, plain folders) into the kit's layout
    sample       the generated, labelled sample set
    demo_model   the offline demo detector (EfficientNet-Lite0 features + logistic regression)
    training/    everything train.ipynb needs, and never shipped to the server (see lib/training/__init__.py)
    sweep/       Optuna studies over a notebook's parameters: space, trials run by papermill, resume, reports

Submodules are imported explicitly (``from lib import frames``) so that importing ``lib`` stays cheap.
"""

import warnings

__version__ = "0.1.0"

# The kit's own bars come from lib.progress and never warn. Other libraries' tqdm.auto bars (transformers') warn
# "IProgress not found" in a JupyterLab kernel without ipywidgets (an environment other than requirements.txt's) and
# then print text bars, which is fine there.
warnings.filterwarnings("ignore", message="IProgress not found")

from . import progress as _progress  # noqa: E402,F401  (under papermill: text bars for other libraries too)

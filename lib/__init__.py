"""Deepfake-detection competition kit: the library the notebooks import.

Modules, one concern each, from the bottom of the house up:
    paths        every folder the kit reads or writes
    errors       ParameterError, MediaError, ModelLoadError
    checks       value checks for run parameters (used once, at each notebook's edge, and by the settings types)
    registry     name -> object registries that fail loudly on unknown names
    devices      devices and precisions: what a run may ask for, what it gets, the autocast it needs
    media        list the media files of a flat data folder
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
    shards       a deterministic share of a data folder (shard: i/n) and the merge of the shards' submissions
    submission   write and validate submission.csv (python -m lib.submission merge OUT RUN...)
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

Submodules are imported explicitly (``from lib import frames``) so that importing ``lib`` stays cheap.
"""

import warnings

__version__ = "0.1.0"

# tqdm.auto falls back to text bars when ipywidgets is absent (papermill runs); that is fine and needs no warning.
warnings.filterwarnings("ignore", message="IProgress not found")

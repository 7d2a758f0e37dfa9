"""Deepfake-detection competition kit: the library the notebooks import.

Modules, one concern each:
    paths        every folder the kit reads or writes
    errors       ParameterError, MediaError, ModelLoadError
    registry     name -> function registries that fail loudly on unknown names
    progress     the one tqdm of every loop: widgets in JupyterLab, text under papermill, in scripts and logs
    media        list the media files of a flat data folder
    frames       sample and read frames from videos and images
    faces        face detectors, the crop every stage uses
    tta          test-time augmentation views
    aggregate    per-file score from per-frame scores
    models       load Hugging Face image classifiers, batched inference
    backbones    offline EfficientNet-Lite0 (ImageNet) as a Hugging Face model
    cache        on-disk crop cache keyed by file content and preprocessing settings
    pipeline     preprocess files into cached crops, predict files from crops
    submission   write and validate submission.csv
    metrics      macro F1, confusion matrix, per-source figures, inverted-label check
    experiments  run records, EXPERIMENTS.md, duplicate-submission check, local-vs-public plot
    eda          what a data folder holds and how it compares with the competition's test set
    ensemble     combine runs' predictions; cross-validated weight and threshold fits; the one-model rule
    sample       the generated, labelled sample set
    demo_model   the offline demo detector (EfficientNet-Lite0 features + logistic regression)
    augment      training augmentations (flip, rotate, color, erase, blur, jpeg) on uint8 crops
    sbi          self-blended pseudo-fakes from real crops (dlib 68 landmarks, deformed convex-hull mask)
    losses       cross-entropy, focal, soft-F1 and the distillation loss
    traindata    labelled folders → crops via the cache, the split by origin, per-epoch training samples
    strategies   feature_extractor, fine_tune, lora, distill; the model folder a training run writes
    train        the training loop, validation by file, threshold choice, per-kind report, curves

Submodules are imported explicitly (``from lib import frames``) so that importing ``lib`` stays cheap.
"""

import warnings

__version__ = "0.1.0"

# The kit's own bars come from lib.progress and never warn. Other libraries' tqdm.auto bars (transformers') warn
# "IProgress not found" in a JupyterLab kernel without ipywidgets (an environment other than requirements.txt's) and
# then print text bars, which is fine there.
warnings.filterwarnings("ignore", message="IProgress not found")

from . import progress as _progress  # noqa: E402,F401  (under papermill: text bars for other libraries too)

"""Training: everything train.ipynb needs and the scoring-server bundle never ships (a folder rule: no shipped module
imports from it, and ``lib.bundle`` refuses a bundle whose code would; the sweep reads train.ipynb's schema).

Modules, one concern each:
    parameters  train.ipynb's parameters: TrainOptions (per-strategy options within) and the TRAIN schema
    data        labelled folders → crops via the cache, the split by origin, per-epoch training samples
    augment     training augmentations (flip, rotate, color, erase, blur, jpeg) on uint8 crops
    sbi         self-blended pseudo-fakes from real crops (dlib 68 landmarks, deformed convex-hull mask)
    losses      cross-entropy, focal, soft-F1 and the distillation loss
    evaluate    validation by file: scores, F1/AUC, threshold choice, per-kind report, curves
    loop        the training loop: optimiser, scheduler, early stopping, best weights kept
    strategies  feature_extractor, fine_tune, lora, distill, linear_probe as registered objects, each with its options
    traces      trace_signals: forgery-trace signals per crop, their mean and spread per file, one regression
    export      the model folder a run writes, and its reload check
    job         a training run step by step (what train.ipynb calls)
    demo_model  the offline demo detector (EfficientNet-Lite0 features + logistic regression): make demo
"""

from . import traces  # noqa: F401  registers trace_signals among the strategies (it builds on Strategy)
from .job import TrainingJob
from .parameters import TRAIN, TrainOptions

__all__ = ["TRAIN", "TrainOptions", "TrainingJob"]

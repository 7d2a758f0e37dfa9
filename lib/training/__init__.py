"""Training: everything train.ipynb needs and the scoring-server bundle never ships (a folder rule: nothing outside
``lib/training`` imports from it, and ``lib.bundle`` refuses a bundle whose code would).

Modules, one concern each:
    params      train.ipynb's parameters, checked once before any work starts
    data        labelled folders → crops via the cache, the split by origin, per-epoch training samples
    augment     training augmentations (flip, rotate, color, erase, blur, jpeg) on uint8 crops
    sbi         self-blended pseudo-fakes from real crops (dlib 68 landmarks, deformed convex-hull mask)
    losses      cross-entropy, focal, soft-F1 and the distillation loss
    evaluate    validation by file: scores, F1/AUC, threshold choice, per-kind report, curves
    loop        the training loop: optimiser, scheduler, early stopping, best weights kept
    strategies  feature_extractor, fine_tune, lora, distill as registered objects
    export      the model folder a run writes, and its reload check
    job         a training run step by step (what train.ipynb calls)
    demo_model  the offline demo detector (EfficientNet-Lite0 features + logistic regression): make demo
"""

from .job import TrainingJob
from .params import check_params

__all__ = ["TrainingJob", "check_params"]

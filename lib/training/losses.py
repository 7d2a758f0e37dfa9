"""Training losses on logits (B, C) and integer targets (B,), chosen by name, and the distillation loss."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ParameterError
from ..registry import Registry

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (logits (B, C), target (B,)) -> scalar mean loss
LOSSES: Registry[Callable[[float, float], Loss]] = Registry("loss")  # (label_smoothing, focal_gamma) -> Loss
EPS = 1e-7


@LOSSES.register("cross_entropy")
def _cross_entropy(label_smoothing: float, focal_gamma: float) -> Loss:
    """Cross-entropy with label smoothing."""
    return lambda logits, target: F.cross_entropy(logits, target, label_smoothing=label_smoothing)


@LOSSES.register("focal")
def _focal(label_smoothing: float, focal_gamma: float) -> Loss:
    """Focal loss: per-sample cross-entropy (with label smoothing) weighted by (1 - p_t) ** gamma."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, target, label_smoothing=label_smoothing, reduction="none")
        if focal_gamma == 0:
            return ce.mean()
        p_t = logits.softmax(dim=1).gather(1, target[:, None]).squeeze(1)
        return ((1 - p_t).clamp(min=0) ** focal_gamma * ce).mean()

    return loss


@LOSSES.register("soft_f1")
def _soft_f1(label_smoothing: float, focal_gamma: float) -> Loss:
    """1 - soft macro F1 over the classes, from softmax probabilities and soft TP / FP / FN sums over the batch."""

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        prob = logits.softmax(dim=1)
        onehot = F.one_hot(target, num_classes=logits.shape[1]).to(prob.dtype)
        tp = (prob * onehot).sum(dim=0)
        fp = (prob * (1 - onehot)).sum(dim=0)
        fn = ((1 - prob) * onehot).sum(dim=0)
        f1 = 2 * tp / (2 * tp + fp + fn + EPS)
        return 1 - f1.mean()

    return loss


def make_loss(name: str, label_smoothing: float = 0.0, focal_gamma: float = 2.0) -> Loss:
    """The loss registered as ``name``: a function (logits, target) -> scalar mean loss."""
    if not 0.0 <= label_smoothing < 0.5:
        raise ParameterError("label_smoothing", label_smoothing, "a number in [0, 0.5)")
    if not focal_gamma >= 0.0:
        raise ParameterError("focal_gamma", focal_gamma, "a number >= 0")
    return LOSSES.get(name)(float(label_smoothing), float(focal_gamma))


def distill_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor, alpha: float,
                 temperature: float, hard_loss: Loss) -> torch.Tensor:
    """alpha · hard_loss(student, target) + (1 - alpha) · T² · KL(softmax(teacher / T) ‖ softmax(student / T)).

    ``alpha`` in [0, 1] and ``temperature`` > 0 are checked once, by the distill strategy's parameter check."""
    t = float(temperature)
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits.detach() / t, dim=1),
                    reduction="batchmean") * t * t
    return alpha * hard_loss(student_logits, target) + (1 - alpha) * soft

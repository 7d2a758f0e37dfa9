from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lib.errors import ParameterError
from lib.training.losses import LOSSES, distill_loss, make_loss


def _batch(seed: int = 0, b: int = 16, c: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g) * 2, torch.randint(0, c, (b,), generator=g)


def test_registered_names():
    assert LOSSES.names() == ["cross_entropy", "focal", "soft_f1"]
    with pytest.raises(ParameterError, match="loss='dice'.*cross_entropy, focal, soft_f1"):
        make_loss("dice")


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_and_focal_gamma0(smoothing):
    logits, target = _batch()
    ce = make_loss("cross_entropy", label_smoothing=smoothing)(logits, target)
    torch.testing.assert_close(ce, F.cross_entropy(logits, target, label_smoothing=smoothing))
    torch.testing.assert_close(make_loss("focal", smoothing, focal_gamma=0.0)(logits, target), ce)
    assert make_loss("focal", smoothing, focal_gamma=2.0)(logits, target) < ce


def test_soft_f1_range_and_gradients():
    target = torch.tensor([0, 1, 1, 0, 1, 0])
    right = F.one_hot(target, 2).float() * 20 - 10
    loss = make_loss("soft_f1")
    assert loss(right, target) < 1e-3
    assert loss(-right, target) > 0.999
    logits, target = _batch(1)
    logits.requires_grad_(True)
    value = loss(logits, target)
    value.backward()
    assert 0 < value.item() < 1 and logits.grad is not None and logits.grad.abs().sum() > 0


def test_distill_loss():
    student, target = _batch(2)
    teacher, _ = _batch(3)
    hard = make_loss("cross_entropy")
    torch.testing.assert_close(distill_loss(student, teacher, target, 1.0, 3.0, hard), hard(student, target))
    t = 3.0
    kl = F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher / t, 1), reduction="batchmean") * t * t
    torch.testing.assert_close(distill_loss(student, teacher, target, 0.0, t, hard), kl)
    assert distill_loss(student, student.clone(), target, 0.0, t, hard).abs() < 1e-6
    s = student.clone().requires_grad_(True)
    distill_loss(s, teacher, target, 0.5, t, hard).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs,name", [
    ({"label_smoothing": 0.5}, "label_smoothing"),
    ({"label_smoothing": -0.1}, "label_smoothing"),
    ({"focal_gamma": -1.0}, "focal_gamma"),
])
def test_make_loss_rejects_bad_parameters(kwargs, name):
    with pytest.raises(ParameterError, match=name) as err:
        make_loss("focal", **kwargs)
    assert err.value.name == name

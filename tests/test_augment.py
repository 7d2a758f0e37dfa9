from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from lib.training import augment
from lib.errors import ParameterError


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    return np.ascontiguousarray(skdata.astronaut()[40:200, 140:300])  # 160 × 160 face crop


@pytest.mark.parametrize("name", augment.AUGMENTS.names())
def test_each_op_keeps_shape_dtype_and_input(img, name):
    before = img.copy()
    out = augment.AUGMENTS.get(name)(img, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(img, before)
    assert not np.shares_memory(out, img)


def test_registered_names():
    assert augment.AUGMENTS.names() == ["flip", "rotate", "color", "erase", "blur", "jpeg"]


def test_flip_is_an_exact_mirror(img):
    np.testing.assert_array_equal(augment.AUGMENTS.get("flip")(img, np.random.default_rng(0)), img[:, ::-1])


def test_check_rejects_unknown_names_and_non_lists():
    assert augment.check(("flip", "jpeg")) == ["flip", "jpeg"]
    with pytest.raises(ParameterError, match=r"augment='mixup'.*flip, rotate, color, erase, blur, jpeg"):
        augment.check(["flip", "mixup"])
    with pytest.raises(ParameterError, match="augment='flip'.*list of names"):
        augment.check("flip")  # type: ignore[arg-type]


def test_augment_p0_identity_and_deterministic(img):
    names = augment.AUGMENTS.names()
    out = augment.augment(img, names, np.random.default_rng(1), p=0.0)
    np.testing.assert_array_equal(out, img)
    assert out is not img
    before = img.copy()
    a = augment.augment(img, names, np.random.default_rng(7), p=0.8)
    b = augment.augment(img, names, np.random.default_rng(7), p=0.8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(img, before)
    assert not np.array_equal(augment.augment(img, names, np.random.default_rng(7), p=1.0), img)
    with pytest.raises(ParameterError, match="augment_p"):
        augment.augment(img, names, np.random.default_rng(0), p=1.5)


def test_jpeg_changes_pixels_keeps_mean(img):
    out = augment.jpeg(img, 40)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img)
    assert abs(float(out.mean()) - float(img.mean())) < 2.0
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), img.reshape(-1, 3).mean(0), atol=3.0)  # channels not swapped

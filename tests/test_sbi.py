from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from lib import faces
from lib.training import sbi


def _have_predictor() -> bool:
    try:
        sbi.predictor_path()
    except (FileNotFoundError, ValueError):
        return False
    return True


def _synthetic_face(size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A textured crop and 68 landmark-like points on an ellipse in its middle."""
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    points = np.stack([size / 2 + size * 0.2 * np.cos(t), size / 2 + size * 0.25 * np.sin(t)], 1).astype(np.float32)
    return crop, points


def test_predictor_path_points_at_the_68_point_model():
    if not _have_predictor():
        pytest.skip("shape_predictor_68_face_landmarks.dat is not installed")
    assert sbi.predictor_path().name == "shape_predictor_68_face_landmarks.dat"


def test_hull_mask_inside_and_outside():
    square = np.array([[20, 20], [60, 20], [60, 60], [20, 60], [40, 40]], np.float32)
    m = sbi.hull_mask(square, (100, 120))
    assert m.shape == (100, 120) and m.dtype == np.float32
    assert m[40, 40] == 1 and m[22, 58] == 1 and m[5, 5] == 0 and m[90, 110] == 0 and m[40, 80] == 0
    tri = sbi.hull_mask(np.array([[10, 10], [90, 10], [50, 90]], np.float32), (100, 100))
    assert tri[30, 50] == 1 and tri[80, 15] == 0 and tri[80, 85] == 0
    assert set(np.unique(tri)) == {0.0, 1.0}


def test_self_blend_changes_only_inside_its_mask():
    crop, points = _synthetic_face()
    before = crop.copy()
    fake, mask = sbi.self_blend(crop, points, np.random.default_rng(0))
    np.testing.assert_array_equal(crop, before)
    assert fake.shape == crop.shape and fake.dtype == np.uint8
    assert mask.shape == crop.shape[:2] and mask.dtype == np.float32
    assert 0 <= mask.min() and mask.max() <= 1 and mask.max() >= 0.25
    outside = mask == 0
    assert outside.any() and (~outside).any()
    np.testing.assert_array_equal(fake[outside], crop[outside])
    assert not np.array_equal(fake, crop)
    assert mask[48, 48] > 0 and mask[0, 0] == 0


def test_self_blend_deterministic_per_seed():
    crop, points = _synthetic_face()
    a = sbi.self_blend(crop, points, np.random.default_rng(3))
    b = sbi.self_blend(crop, points, np.random.default_rng(3))
    c = sbi.self_blend(crop, points, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


def test_blend_grid_rows():
    import matplotlib.pyplot as plt

    crop, points = _synthetic_face(64)
    fig = sbi.blend_grid([crop, crop], [points, points], np.random.default_rng(0), n=4)
    assert len(fig.axes) == 2 * 4
    plt.close(fig)


def test_landmarks_on_the_astronaut():
    if not _have_predictor():
        pytest.skip("shape_predictor_68_face_landmarks.dat is not installed")
    frame = skdata.astronaut()
    box = faces.largest(faces.detect(frame))
    assert box is not None
    crop = faces.crop(frame, box, 1.3, 224)
    pts = sbi.landmarks(crop, 1.3)
    assert pts.shape == (68, 2) and pts.dtype == np.float32
    assert (pts >= 0).all() and (pts < 224).all()
    assert pts[36:48, 1].max() < pts[48:68, 1].min()  # eyes above the mouth
    fake, mask = sbi.self_blend(crop, pts, np.random.default_rng(0))
    assert fake.shape == crop.shape and mask[int(pts[30, 1]), int(pts[30, 0])] > 0  # nose tip inside the mask

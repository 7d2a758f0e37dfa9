from __future__ import annotations

import numpy as np
import pytest
from skimage import data as skdata

from lib import aggregate, faces, tta
from lib.errors import ParameterError


def test_crop_box_square_centred_and_clipped():
    assert faces.crop_box((100, 100, 200, 200), 1.3, (480, 640)) == (85, 85, 215, 215)
    x0, y0, x1, y1 = faces.crop_box((0, 10, 100, 110), 2.0, (480, 640))  # left edge clips
    assert (x0, y0, x1, y1) == (0, 0, 150, 160)


def test_largest_box():
    assert faces.largest([(0, 0, 10, 10), (5, 5, 50, 40), (0, 0, 20, 20)]) == (5, 5, 50, 40)
    assert faces.largest([]) is None


@pytest.mark.parametrize("no_face,shape", [("center_crop", (16, 16, 3)), ("full_frame", (16, 16, 3))])
def test_crop_without_face(no_face, shape):
    frame = np.zeros((60, 100, 3), np.uint8)
    assert faces.crop(frame, None, 1.3, 16, no_face).shape == shape
    assert faces.crop(frame, None, 1.3, 16, "skip") is None


def test_crop_reads_the_box_region():
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[50:150, 50:150] = 255
    c = faces.crop(frame, (50, 50, 150, 150), 1.0, 32)
    assert c.shape == (32, 32, 3) and c.min() == 255


def test_dlib_finds_the_astronaut_face_at_any_scale():
    img = skdata.astronaut()  # 512×512, face around x 160-260, y 60-190
    for width in (320, 640):
        box = faces.largest(faces.detect(img, "dlib_hog", width))
        assert box is not None
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        assert 170 < cx < 260 and 70 < cy < 180, box


def test_unknown_detector_names_valid_values():
    with pytest.raises(ParameterError, match="detector.*dlib_hog"):
        faces.detect(np.zeros((10, 10, 3), np.uint8), "mtcnn")


def test_tta_views_stack_view_major():
    crops = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    v = tta.views(crops, "flip")
    assert v.shape == (4, 4, 4, 3)
    np.testing.assert_array_equal(v[:2], crops)
    np.testing.assert_array_equal(v[2:], crops[:, :, ::-1])
    assert tta.views(crops, "flip_zoom").shape == (8, 4, 4, 3)
    assert tta.n_views("zoom") == 2
    with pytest.raises(ParameterError, match=r"tta='flop'.*none, flip"):
        tta.views(crops, "flop")


def test_aggregators():
    p = np.array([0.1, 0.2, 0.9, 0.3])
    assert aggregate.aggregate(p, "mean") == pytest.approx(0.375)
    assert aggregate.aggregate(p, "median") == pytest.approx(0.25)
    assert aggregate.aggregate(p, "max") == pytest.approx(0.9)
    assert aggregate.aggregate(np.array([0.5, 0.5]), "logit_mean") == pytest.approx(0.5)
    with pytest.raises(ParameterError, match="aggregate"):
        aggregate.aggregate(p, "vote")


def test_confident_rule():
    fakes = np.array([0.95] * 14 + [0.5] * 16)  # 14 > 30/2.5 = 12 and > 11 → mean of the confident ones
    assert aggregate.confident(fakes) == pytest.approx(0.95)
    few = np.array([0.95] * 10 + [0.5] * 20)  # not enough confident fakes → plain mean
    assert aggregate.confident(few) == pytest.approx(few.mean())
    reals = np.array([0.05] * 28 + [0.6] * 2)  # 93% below 0.2 → mean of those
    assert aggregate.confident(reals) == pytest.approx(0.05)


def test_interpolate_boxes_between_detections():
    keyed = {0: (0, 0, 10, 10), 4: (40, 0, 50, 10), 6: None, 8: None}
    boxes = faces.interpolate_boxes(keyed, 9)
    assert boxes[2] == (20, 0, 30, 10)  # half-way between the two detections
    assert boxes[5] == (40, 0, 50, 10)  # next to a miss: the nearer box is held
    assert boxes[7] is None and boxes[8] is None  # between two misses: no box


def test_detect_sequence_on_every_third_frame_follows_the_face():
    import media_factory as mf

    frames = mf.face_frames(10, (320, 240))
    every, calls = faces.detect_sequence(frames, every=1)
    sparse, sparse_calls = faces.detect_sequence(frames, every=3)
    assert calls == 10 and sparse_calls == 4  # frames 0, 3, 6, 9
    for a, b in zip(every, sparse):
        ix = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix
        assert ix / union > 0.7


def test_adapted_width_fits_the_face_and_stays_within_bounds():
    assert faces.adapted_width((0, 0, 200, 200), 1000, 640) == 600
    assert faces.adapted_width((0, 0, 50, 50), 1000, 640) == 640, "small faces keep the full detect width"
    assert faces.adapted_width((0, 0, 900, 900), 1000, 640) == faces.MIN_DETECT_WIDTH


def test_adaptive_detection_finds_the_same_faces_and_falls_back_when_it_misses():
    import media_factory as mf

    face = mf.face_image((900, 600))  # a big face: the adapted width is well below 640
    frames_ = [face, face[:, ::-1].copy(), np.zeros_like(face), face]
    fixed, calls_fixed = faces.detect_sequence(frames_, detect_width=640)
    adaptive, calls_adaptive = faces.detect_sequence(frames_, detect_width=640, scale="adaptive")
    assert calls_fixed == 4 and calls_adaptive == 5, "the blank frame is tried at the adapted width, then at 640"
    assert adaptive[2] is None and fixed[2] is None
    for a, b in zip(fixed, adaptive):
        if a is not None:
            ix = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix
            assert ix / union > 0.7
    with pytest.raises(ParameterError, match="detect_scale"):
        faces.detect_sequence(frames_, scale="zoom")


def test_detect_scale_changes_the_cache_key_only_when_adaptive():
    from lib.options import PrepSettings

    assert PrepSettings().key_text() == PrepSettings(detect_scale="fixed").key_text()
    assert "detect_scale" in PrepSettings(detect_scale="adaptive").key_text()
    with pytest.raises(ParameterError, match="detect_scale='big'"):
        PrepSettings(detect_scale="big")

"""Alignment geometry: landmarks under any similarity transform land on the ArcFace template."""

import cv2
import numpy as np
import pytest

from firmware.face.align import (
    ARCFACE_4,
    ARCFACE_5,
    AlignmentError,
    align_face,
    grey_to_rgb,
    similarity_matrix,
)


def transformed(points, angle_deg, scale, shift):
    a = np.radians(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return (points @ rot.T + shift).astype(np.float32)


@pytest.mark.parametrize("angle,scale,shift", [(0, 1, (0, 0)), (25, 2.5, (300, 120)), (-40, 0.7, (10, 200))])
def test_matrix_maps_landmarks_to_template(angle, scale, shift):
    points = transformed(ARCFACE_5, angle, scale, np.array(shift))
    matrix = similarity_matrix(points)
    mapped = np.hstack([points, np.ones((5, 1))]) @ matrix.T
    np.testing.assert_allclose(mapped, ARCFACE_5, atol=0.05)
    # a similarity: equal scale on both axes, no shear
    a, b = matrix[0, :2], matrix[1, :2]
    assert abs(np.linalg.norm(a) - np.linalg.norm(b)) < 1e-4 and abs(a @ b) < 1e-4


def test_warp_moves_marked_pixels_onto_template():
    image = np.zeros((480, 640, 3), np.uint8)
    points = transformed(ARCFACE_5, 15, 3.0, np.array([200, 60]))
    for x, y in points:
        cv2.circle(image, (int(round(x)), int(round(y))), 6, (255, 255, 255), -1)
    aligned = align_face(image, points)
    assert aligned.shape == (112, 112, 3)
    for tx, ty in ARCFACE_5:
        assert aligned[int(round(ty)), int(round(tx))].min() > 200


def test_four_point_template_with_mouth_centre():
    points = transformed(ARCFACE_4, 10, 1.5, np.array([50, 50]))
    mapped = np.hstack([points, np.ones((4, 1))]) @ similarity_matrix(points).T
    np.testing.assert_allclose(mapped, ARCFACE_4, atol=0.05)


def test_degenerate_landmarks_are_an_alignment_error():
    with pytest.raises(AlignmentError):
        similarity_matrix(np.zeros((3, 2), np.float32))


def test_grey_card_photo_replicated_to_three_channels():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = grey_to_rgb(grey)
    assert rgb.shape == (3, 4, 3) and (rgb[..., 0] == grey).all() and (rgb[..., 2] == grey).all()

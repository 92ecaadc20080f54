"""Plausibility checks of camera intrinsics (issue 8: garbage camera_info must not reach the memory)."""
import math

import numpy as np
import pytest

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.errors import InputError


def _k(fx=600.0, fy=600.0, cx=320.0, cy=240.0, skew=0.0):
    return [fx, skew, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("width,height,k,d,needle", [
    (640, 480, _k(fx=1e-12, fy=1e-12), [], "horizontal field of view 180"),      # the issue-8 fuzz case
    (640, 480, _k(fx=1.0, fy=1.0), [], "field of view 179.6"),                     # f = 1 px
    (640, 480, _k(fx=1e7, fy=1e7), [], "horizontal field of view 0.00366"),       # metres-as-pixels mix-up
    (640, 480, _k(fx=600.0, fy=1e7), [], "vertical field of view"),
    (640, 480, _k(fx=600.0, fy=100.0), [], "pixel aspect ratio"),
    (640, 480, _k(fx=float("inf")), [], "NaN or infinite"),
    (640, 480, _k(cx=float("nan")), [], "NaN or infinite"),
    (640, 480, _k(cx=-1.0), [], "principal point"),
    (640, 480, _k(cy=480.5), [], "principal point"),
    (640, 480, [600, 0, 320, 0, 600, 240, 0, 0, 0], [], "not a pinhole camera matrix"),
    (640, 480, [600, 0, 320, 0, 600, 240, 0.1, 0, 1], [], "not a pinhole camera matrix"),
    (640, 480, [600, 0, 320, 3, 600, 240, 0, 0, 1], [], "not a pinhole camera matrix"),
    (640, 480, _k(), [0.1, float("nan"), 0, 0, 0], "D contains"),
    (0, 480, _k(), [], "not positive"),
    (640, -1, _k(), [], "not positive"),
    (10 ** 6, 480, _k(), [], "implausible"),
])
def test_implausible_camera_info_is_refused_with_a_message(width, height, k, d, needle):
    with pytest.raises(InputError, match=needle):
        CameraModel.from_camera_info_fields(width, height, k, d, "plumb_bob")


def test_tiny_focal_length_of_the_fuzz_report_is_refused():
    with pytest.raises(InputError, match="outside the plausible 1-179 deg"):
        CameraModel.from_intrinsics(1e-12, 1e-12, 320.0, 240.0, 640, 480)


@pytest.mark.parametrize("width,height,fx,fy", [
    (640, 480, 615.0, 615.0),          # RealSense D435 color
    (1280, 720, 910.0, 910.0),
    (160, 120, 153.75, 153.75),        # the simulator's small test camera
    (640, 480, 190.0, 190.0),          # 118 deg wide angle
    (640, 480, 18000.0, 18000.0),      # 2 deg telephoto
    (640, 480, 600.0, 620.0),          # non-square pixels
    (64, 48, 50.0, 50.0),
])
def test_plausible_cameras_are_accepted(width, height, fx, fy):
    cam = CameraModel.from_camera_info_fields(width, height, _k(fx, fy, width / 2 - 0.5, height / 2 - 0.5),
                                              [0.0] * 5, "plumb_bob")
    assert cam.fx == fx and cam.shape == (height, width)


def test_field_of_view_bounds():
    """Square 480x480 image, square pixels: both fields of view equal the one set."""
    def focal_for(fov_deg):
        return 240.0 / math.tan(math.radians(fov_deg) / 2)
    for good in (1.1, 60.0, 178.9):
        f = focal_for(good)
        CameraModel.from_intrinsics(f, f, 240.0, 240.0, 480, 480)
    for bad in (0.9, 179.2):
        f = focal_for(bad)
        with pytest.raises(InputError, match="horizontal field of view"):
            CameraModel.from_intrinsics(f, f, 240.0, 240.0, 480, 480)


def test_skew_is_allowed_and_k_is_kept():
    cam = CameraModel.from_camera_info_fields(640, 480, _k(skew=0.5), [], "plumb_bob")
    np.testing.assert_array_equal(cam.K, np.array(_k(skew=0.5)).reshape(3, 3))

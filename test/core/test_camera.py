"""CameraModel: validation, pinhole geometry, distortion round trips, the cached ray grid."""
import numpy as np
import pytest

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.errors import InputError

DISTORTED = {
    "plumb_bob": [-0.3, 0.12, 0.001, -0.002, -0.02],
    "rational_polynomial": [0.3, -0.1, 0.001, 0.002, 0.02, 0.05, 0.01, 0.005],
    "equidistant": [0.08, -0.03, 0.01, -0.002],
}


def pinhole():
    return CameraModel.from_intrinsics(600.0, 610.0, 320.0, 240.0, 640, 480, frame_id="cam")


def test_pinhole_rays_backprojection_and_projection_are_exact():
    cam = pinhole()
    assert not cam.has_distortion
    rays = cam.pixel_rays([320.0, 620.0, 20.0], [240.0, 240.0, 545.0])
    np.testing.assert_allclose(rays, [[0, 0, 1], [0.5, 0, 1], [-0.5, 0.5, 1]])
    pts = cam.backproject([620.0, 20.0], [240.0, 545.0], [2.0, 4.0])
    np.testing.assert_allclose(pts, [[1.0, 0.0, 2.0], [-2.0, 2.0, 4.0]])
    np.testing.assert_allclose(cam.project(pts), [[620.0, 240.0], [20.0, 545.0]])


def test_points_behind_the_camera_project_to_nan():
    uv = pinhole().project([[0.0, 0.0, -1.0], [0.1, 0.0, 1.0]])
    assert np.all(np.isnan(uv[0])) and np.all(np.isfinite(uv[1]))


@pytest.mark.parametrize("model", sorted(DISTORTED))
def test_distortion_round_trip(model):
    cam = CameraModel.from_intrinsics(600.0, 600.0, 322.0, 241.0, 640, 480, D=DISTORTED[model],
                                      distortion_model=model)
    assert cam.has_distortion
    u, v = np.meshgrid(np.linspace(0, 639, 9), np.linspace(0, 479, 7))
    z = np.linspace(0.4, 5.0, u.size)
    pts = cam.backproject(u, v, z)
    np.testing.assert_allclose(cam.project(pts), np.stack([u.ravel(), v.ravel()], axis=1), atol=1e-6)
    np.testing.assert_allclose(cam.backproject(*cam.project(pts).T, pts[:, 2]), pts, atol=1e-8)
    # Distortion is really applied: corner rays differ from the pinhole's by tens of pixels' worth.
    plain = CameraModel.from_intrinsics(600.0, 600.0, 322.0, 241.0, 640, 480)
    shift_px = np.abs(cam.pixel_rays([0.0], [0.0]) - plain.pixel_rays([0.0], [0.0])).max() * 600.0
    assert shift_px > 20.0


@pytest.mark.parametrize("model", ["pinhole", "plumb_bob", "equidistant"])
def test_ray_grid_matches_pixel_rays_and_is_cached(model):
    if model == "pinhole":
        cam = pinhole()
    else:
        cam = CameraModel.from_intrinsics(600.0, 600.0, 320.0, 240.0, 640, 480, D=DISTORTED[model],
                                          distortion_model=model)
    rx, ry = cam.ray_grid()
    assert rx.shape == ry.shape == (480, 640)
    assert cam.ray_grid()[0] is rx                      # cached: no recomputation
    assert not rx.flags.writeable
    u = np.array([0, 17, 320, 639, 400])
    v = np.array([0, 400, 240, 479, 11])
    rays = cam.pixel_rays(u, v)
    np.testing.assert_allclose(rx[v, u], rays[:, 0], atol=1e-6)
    np.testing.assert_allclose(ry[v, u], rays[:, 1], atol=1e-6)


def test_backproject_mask_uses_only_valid_masked_pixels():
    cam = pinhole()
    depth = np.full((480, 640), np.nan, dtype=np.float32)
    depth[240, 320] = 2.0
    depth[240, 620] = 1.0
    depth[0, 0] = 3.0
    mask = np.zeros((480, 640), dtype=bool)
    mask[240, :] = True
    pts = cam.backproject_mask(depth, mask)
    np.testing.assert_allclose(pts, [[0.0, 0.0, 2.0], [0.5, 0.0, 1.0]], atol=1e-6)
    with pytest.raises(InputError, match="640x480"):
        cam.backproject_mask(depth[:100], None)


def test_camera_info_fields_give_the_same_model():
    a = CameraModel.from_intrinsics(600.0, 610.0, 320.0, 240.0, 640, 480, D=[0.0] * 5, frame_id="cam")
    b = CameraModel.from_camera_info_fields(640, 480, [600, 0, 320, 0, 610, 240, 0, 0, 1], [0.0] * 5,
                                            "plumb_bob", "cam")
    assert a == b and hash(a) == hash(b)
    assert (b.fx, b.fy, b.cx, b.cy) == (600.0, 610.0, 320.0, 240.0)
    assert not b.has_distortion            # all-zero D is no distortion, whatever the model name


@pytest.mark.parametrize("kwargs, message", [
    (dict(fx=0.0), "focal"),
    (dict(fy=-5.0), "focal"),
    (dict(fx=float("nan")), "NaN"),
    (dict(cx=700.0), "principal point"),
    (dict(width=0), "size"),
    (dict(D=[0.1, 0.0, 0.0, 0.0, 0.0], distortion_model="kannala_brandt"), "unsupported distortion"),
    (dict(D=[0.1, 0.2, 0.0], distortion_model="plumb_bob"), "coefficients"),
    (dict(D=[0.1, float("inf"), 0.0, 0.0, 0.0]), "D contains"),
])
def test_invalid_intrinsics_raise_input_error(kwargs, message):
    args = dict(fx=600.0, fy=600.0, cx=320.0, cy=240.0, width=640, height=480)
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        CameraModel.from_intrinsics(**args)


def test_malformed_camera_info_raises_input_error():
    with pytest.raises(InputError, match="9 values"):
        CameraModel.from_camera_info_fields(640, 480, [600, 0, 320], [], "plumb_bob")
    with pytest.raises(InputError, match="uncalibrated"):
        CameraModel.from_camera_info_fields(640, 480, [0.0] * 9, [], "")

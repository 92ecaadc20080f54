"""Gravity: tracking the support plane between full RANSAC fits (GravityEstimator, refit_every_frames)."""
import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity import GravityEstimator
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.sim.analytic import CameraPose, random_tabletop, render

OBJECTS = random_tabletop(8, seed=4, area=(0.7, 0.5), gap_m=0.03)


def angle_deg(a, b):
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


def frame(pose, seed=0):
    """A noisy 640x480 tabletop frame and its object mask (excluded from the support, as the pipeline does)."""
    f = render(OBJECTS, pose, noise=DepthNoiseModel(), edge_holes=0.3, mask_dilate_px=2, seed=seed)
    return f, f.mask > 0


def plane_depth(camera, pitch_deg: float, height: float) -> np.ndarray:
    """Depth (metres, NaN where the ray misses) of an endless horizontal plane ``height`` below a camera
    pitched ``pitch_deg`` down."""
    up = np.array([0.0, -np.cos(np.radians(pitch_deg)), -np.sin(np.radians(pitch_deg))])
    rx, ry = camera.ray_grid()
    denom = rx * up[0] + ry * up[1] + up[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom < -1e-6, -height / denom, np.nan).astype(np.float32)


def test_tracking_follows_a_slowly_tilting_camera_like_the_full_fit():
    """Tilting 6 deg/s and orbiting 15 deg/s at 30 Hz: every frame but the first and the periodic refit
    (frame 30) is tracked, and each agrees with the truth and with the full fit on every frame."""
    tracking, full = GravityEstimator(), GravityEstimator(refit_every_frames=1)
    for i in range(36):
        f, exclude = frame(CameraPose(height=0.7, pitch_deg=30.0 + 0.2 * i, yaw_deg=0.5 * i), seed=i)
        g = tracking.update(f.depth, f.camera, exclude_mask=exclude)
        g_full = full.update(f.depth, f.camera, exclude_mask=exclude)
        assert tracking.tracked == (i not in (0, 30)), i
        assert not full.tracked
        assert ("tracked" in tracking.status) == tracking.tracked
        assert tracking.status.startswith("support plane fitted")
        assert angle_deg(g.up, f.gravity.up) < 0.2
        assert angle_deg(g.up, g_full.up) < 0.1
        assert abs(g.support_height - f.gravity.support_height) < 0.003
        assert abs(g.support_height - g_full.support_height) < 0.002


def test_a_fast_turn_is_still_tracked_and_converged():
    """Pitching 2.5 deg per frame (75 deg/s): the first pass (within track_capture_m of the last plane) still
    catches the table and the least-squares passes converge to the full fit's plane."""
    tracking, full = GravityEstimator(), GravityEstimator(refit_every_frames=1)
    for i in range(5):
        f, exclude = frame(CameraPose(height=0.7, pitch_deg=30.0 + 2.5 * i), seed=i)
        g = tracking.update(f.depth, f.camera, exclude_mask=exclude)
        g_full = full.update(f.depth, f.camera, exclude_mask=exclude)
        assert tracking.tracked == (i > 0)
        assert angle_deg(g.up, g_full.up) < 0.05
        assert abs(g.support_height - g_full.support_height) < 0.002


def test_a_re_placed_camera_is_refitted_in_the_same_frame():
    """Re-placed (turned 15 deg, lowered, orbited) or only raised 10 cm: the tracked plane is lost, the full
    fit runs in that frame and its result is taken at once (no 'jumped' hold, no blending of heights)."""
    est = GravityEstimator()
    poses = [CameraPose(height=0.7, pitch_deg=35.0)] * 3 + [CameraPose(height=0.55, pitch_deg=50.0,
                                                                      yaw_deg=40.0)] * 3
    poses += [CameraPose(height=0.65, pitch_deg=50.0, yaw_deg=40.0)] * 2        # raised 10 cm
    tracked = []
    for i, pose in enumerate(poses):
        f, exclude = frame(pose, seed=i)
        g = est.update(f.depth, f.camera, exclude_mask=exclude)
        tracked.append(est.tracked)
        assert angle_deg(g.up, f.gravity.up) < 0.3, i
        assert abs(g.support_height - f.gravity.support_height) < 0.004, i
        assert "jumped" not in est.status
    assert tracked == [False, True, True, False, True, True, False, True]


def test_reset_forgets_the_tracked_plane():
    frames = [frame(CameraPose(height=0.7, pitch_deg=p), seed=k) for k, p in enumerate((35.0, 35.5, 41.0))]
    est = GravityEstimator()
    for f, exclude in frames[:2]:
        est.update(f.depth, f.camera, exclude_mask=exclude)
    assert est.tracked
    est.reset()
    f, exclude = frames[2]
    g = est.update(f.depth, f.camera, exclude_mask=exclude)
    g_fresh = GravityEstimator().update(f.depth, f.camera, exclude_mask=exclude)
    assert not est.tracked
    np.testing.assert_array_equal(g.rotation, g_fresh.rotation)   # exactly a first frame's full fit
    assert g.support_height == g_fresh.support_height


def test_a_lost_plane_falls_back_to_the_full_fit():
    """The table leaves the view (only the floor 1.45 m below), nothing at all is seen, the table comes back,
    most of it is covered: each time the tracked plane is lost and the full fit decides."""
    f, exclude = frame(CameraPose(height=0.7, pitch_deg=35.0))
    est = GravityEstimator()
    est.update(f.depth, f.camera, exclude_mask=exclude)
    est.update(f.depth, f.camera, exclude_mask=exclude)
    assert est.tracked

    g = est.update(plane_depth(f.camera, 35.0, 1.45), f.camera)           # only the floor
    assert not est.tracked and abs(g.support_height + 1.45) < 0.003
    assert angle_deg(g.up, f.gravity.up) < 0.2
    g = est.update(np.full_like(f.depth, np.nan), f.camera)              # blind: the last estimate is held
    assert not est.tracked and "kept the previous" in est.status and g.source == "plane"
    g = est.update(f.depth, f.camera, exclude_mask=exclude)              # the table again: full fit
    assert not est.tracked and abs(g.support_height + 0.7) < 0.003
    assert est.update(f.depth, f.camera, exclude_mask=exclude) and est.tracked

    covered = exclude.copy()
    covered[:, : int(0.7 * covered.shape[1])] = True                      # 70 % of the view hidden
    g = est.update(f.depth, f.camera, exclude_mask=covered)
    assert not est.tracked and abs(g.support_height + 0.7) < 0.003
    est.update(f.depth, f.camera, exclude_mask=covered)
    assert est.tracked                                                    # the new reference is the covered view


def test_no_drift_over_hundreds_of_noisy_frames():
    """A static camera, 300 frames of fresh depth noise and holes: the estimate stays on the truth (no
    accumulated error from tracking frame to frame), and the full fit runs exactly every 30 frames."""
    clean = render(OBJECTS, CameraPose(height=0.7, pitch_deg=40.0))
    exclude = clean.mask > 0
    sigma = DepthNoiseModel().sigma(np.nan_to_num(clean.depth, nan=1.0))
    rng = np.random.default_rng(7)
    est = GravityEstimator()
    up_err, h_err, full = [], [], []
    for i in range(300):
        depth = clean.depth + (sigma * rng.standard_normal(clean.depth.shape)).astype(np.float32)
        depth[rng.random(depth.shape) < 0.05] = np.nan
        g = est.update(depth, clean.camera, exclude_mask=exclude)
        up_err.append(angle_deg(g.up, clean.gravity.up))
        h_err.append(abs(g.support_height - clean.gravity.support_height))
        if not est.tracked:
            full.append(i)
    assert full == list(range(0, 300, 30))
    assert max(up_err) < 0.1 and np.mean(up_err[-100:]) < 0.05
    assert max(h_err) < 0.002


def test_tracking_settings():
    f, exclude = frame(CameraPose(height=0.7, pitch_deg=35.0))
    est = GravityEstimator(refit_every_frames=1)                          # 1: the full fit every frame
    for _ in range(3):
        est.update(f.depth, f.camera, exclude_mask=exclude)
        assert not est.tracked
    est = GravityEstimator(refit_every_frames=3)
    seen = []
    for _ in range(7):
        est.update(f.depth, f.camera, exclude_mask=exclude)
        seen.append(est.tracked)
    assert seen == [False, True, True, False, True, True, False]
    for bad in (dict(refit_every_frames=0), dict(refit_every_frames=2.5), dict(track_pixel_stride=0),
                dict(track_capture_m=0.005), dict(track_min_inliers=0.0), dict(track_max_turn_deg=0.0)):
        with pytest.raises(InputError, match="gravity"):
            GravityEstimator(**bad)

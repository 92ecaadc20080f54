"""SceneMemory: association, stable ids, smoothing, expiry, reset, bad input, threads, camera motion."""
import threading

import numpy as np
import pytest
from reasoning_fixtures import make_observation, pitched_gravity
from scipy.spatial.transform import Rotation

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.memory import MemoryParams, SceneMemory, estimate_rigid_motion, id_prefix
from spatial_vlm_ros.core.observation import Observation

G = GravityFrame.camera_default()


def obs(label, x, y=0.1, z=1.0, size=(0.08, 0.08, 0.1), **kw):
    return make_observation(label, (x, y, z), size, G, **kw)


def test_ids_are_stable_and_per_label():
    mem = SceneMemory()
    frame = [obs("mug", -0.2), obs("mug", 0.2), obs("red object", 0.0, z=1.3), obs("bowl", 0.4)]
    ids = [o.id for o in mem.update(frame, 0.0, G)]
    assert ids == ["bowl_1", "mug_1", "mug_2", "red_object_1"]
    first = {o.id: o.center[0] for o in mem.snapshot().objects}
    for k in range(1, 6):   # the objects jitter by 1 cm and come in another order
        jitter = 0.01 * (-1) ** k
        mem.update([obs("bowl", 0.4 + jitter), obs("mug", 0.2 + jitter), obs("red object", jitter, z=1.3),
                    obs("mug", -0.2 + jitter)], 0.1 * k, G)
    snap = mem.snapshot()
    assert snap.ids == ("bowl_1", "mug_1", "mug_2", "red_object_1")
    for o in snap.objects:
        assert abs(o.center[0] - first[o.id]) < 0.02
        assert o.observations == 6
    assert mem.last_report.matched and not mem.last_report.created


def test_smoothing_is_a_running_mean_then_exponential():
    mem = SceneMemory(MemoryParams(alpha=0.25))
    xs = [0.00, 0.04, 0.02, 0.06, 0.10]
    for k, x in enumerate(xs):
        mem.update([obs("mug", x)], float(k), G)
    expected = xs[0]
    for n, x in enumerate(xs[1:], start=1):
        w = max(0.25, 1.0 / (n + 1))
        expected = (1 - w) * expected + w * x
    assert mem.snapshot().objects[0].center[0] == pytest.approx(expected)


def test_box_follows_center_and_size_in_the_current_gravity_frame():
    g = pitched_gravity(30.0)
    mem = SceneMemory()
    mem.update([make_observation("mug", (0.0, 0.2, 0.9), (0.08, 0.09, 0.10), g)], 0.0, g)
    o = mem.snapshot().objects[0]
    c = g.to_gravity(o.center)
    np.testing.assert_allclose(o.box_min, c - np.array([0.04, 0.045, 0.05]))
    np.testing.assert_allclose(o.box_max, c + np.array([0.04, 0.045, 0.05]))


def test_labels_never_match_each_other_and_far_objects_start_new_ids():
    mem = SceneMemory()
    mem.update([obs("mug", 0.0)], 0.0, G)
    mem.update([obs("cup", 0.0)], 0.1, G)                 # same place, other label
    mem.update([obs("mug", 0.6)], 0.2, G)                 # same label, 60 cm away
    assert mem.snapshot().ids == ("cup_1", "mug_1", "mug_2")


def test_expiry_after_timeout_and_ids_not_reused():
    mem = SceneMemory(MemoryParams(timeout_s=1.0))
    mem.update([obs("mug", 0.0), obs("bowl", 0.3)], 0.0, G)
    mem.update([obs("bowl", 0.3)], 0.9, G)
    assert mem.snapshot().ids == ("bowl_1", "mug_1")     # unseen for 0.9 s: kept
    mem.update([obs("bowl", 0.3)], 1.2, G)
    assert mem.snapshot().ids == ("bowl_1",)             # unseen for 1.2 s: gone
    assert mem.last_report.expired == ("mug_1",)
    mem.update([obs("bowl", 0.3), obs("mug", 0.0)], 1.3, G)
    assert mem.snapshot().ids == ("bowl_1", "mug_2")     # a new mug gets a new id
    assert mem.expire(10.0) == ["bowl_1", "mug_2"] and len(mem) == 0


def test_reset_clears_objects_and_counters():
    mem = SceneMemory()
    mem.update([obs("mug", 0.0), obs("mug", 0.3)], 5.0, G)
    mem.reset()
    assert mem.snapshot().objects == ()
    mem.update([obs("mug", 0.3)], 1.0, G)                # an older stamp is fine after a reset
    assert mem.snapshot().ids == ("mug_1",)


def test_min_observations_holds_back_tentative_objects():
    mem = SceneMemory(MemoryParams(min_observations=2))
    assert mem.update([obs("mug", 0.0)], 0.0, G) == []
    assert [o.id for o in mem.update([obs("mug", 0.005)], 0.1, G)] == ["mug_1"]
    assert mem.last_report.created == ("mug_1",)


@pytest.mark.parametrize("bad,reason", [
    (lambda: obs("mug", float("nan"), with_points=False), "center is not a finite"),
    (lambda: obs("mug", 0.0, z=-1.0), "not in front of the camera"),
    (lambda: obs("", 0.0), "empty label"),
    (lambda: obs("mug", 0.0, size=(0.1, -0.1, 0.1), with_points=False), "size"),
    (lambda: obs("mug", 0.0, size=(0.1, np.inf, 0.1), with_points=False), "size"),
    (lambda: Observation("mug", 0.9, np.zeros(2), np.ones(3), np.zeros(3), np.ones(3), np.zeros((0, 3))),
     "center is not a finite"),
    (lambda: Observation("mug", float("nan"), np.array([0, 0, 1.0]), np.ones(3), np.zeros(3), np.ones(3),
                         np.zeros((0, 3))), "score"),
    (lambda: "not an observation", "not an Observation"),
    (lambda: Observation("mug", 0.9, np.array([0, 0, 1.0]), np.ones(3), np.zeros(3), np.ones(3), np.zeros((0, 3)),
                         color_rgb=("red",)), "unreadable fields"),
])
def test_bad_observations_are_rejected_with_a_reason_and_do_not_corrupt(bad, reason):
    mem = SceneMemory()
    mem.update([obs("mug", 0.0), obs("bowl", 0.3)], 0.0, G)
    before = mem.snapshot()
    mem.update([bad(), obs("mug", 0.01)], 0.1, G)
    report = mem.last_report
    assert report.rejected and report.rejected[0][0] == 0 and reason in report.rejected[0][1]
    after = mem.snapshot()
    assert after.ids == before.ids
    assert all(np.all(np.isfinite(o.center)) for o in after.objects)


def test_non_finite_points_are_dropped_not_fatal():
    o = obs("mug", 0.0)
    o.points[:5] = np.nan
    mem = SceneMemory()
    mem.update([o], 0.0, G)
    pts = mem.snapshot().objects[0].points
    assert len(pts) == len(o.points) - 5 and np.all(np.isfinite(pts))


@pytest.mark.parametrize("stamp,gravity,observations", [
    (float("nan"), G, []), ("soon", G, []), (1.0, None, []), (1.0, "up", []),
    (1.0, GravityFrame(np.full((3, 3), np.nan)), []), (1.0, GravityFrame(2 * np.eye(3)), []),
    (1.0, G, "mug"), (1.0, G, 42),
])
def test_bad_frames_raise_input_error_and_change_nothing(stamp, gravity, observations):
    mem = SceneMemory()
    mem.update([obs("mug", 0.0)], 0.5, G)
    before = mem.snapshot()
    with pytest.raises(InputError):
        mem.update(observations, stamp, gravity)
    assert mem.snapshot() is before


def test_out_of_order_frames_raise_and_clock_jumps_back_clear():
    mem = SceneMemory(MemoryParams(timeout_s=2.0))
    mem.update([obs("mug", 0.0)], 10.0, G)
    with pytest.raises(InputError, match="older than"):
        mem.update([obs("bowl", 0.3)], 9.5, G)
    assert mem.snapshot().ids == ("mug_1",)
    for stamp in (1.0, 1.1):                            # bag restarted: 9 s back, not yet confirmed
        with pytest.raises(InputError, match="replay restart is assumed after 3"):
            mem.update([obs("bowl", 0.3)], stamp, G)
        assert mem.snapshot().ids == ("mug_1",)
    mem.update([obs("bowl", 0.3)], 1.2, G)              # the third frame in a row confirms it
    assert mem.snapshot().ids == ("bowl_1",) and "clock jumped back" in mem.last_report.note


def test_snapshot_is_immutable_and_not_changed_by_later_updates():
    mem = SceneMemory()
    mem.update([obs("mug", 0.0)], 0.0, G)
    snap = mem.snapshot()
    with pytest.raises(ValueError):
        snap.objects[0].center[0] = 5.0
    with pytest.raises(AttributeError):
        snap.stamp = 3.0
    mem.update([obs("mug", 0.05)], 0.1, G)
    assert snap.objects[0].center[0] == pytest.approx(0.0)
    assert mem.snapshot().objects[0].center[0] == pytest.approx(0.025)


def test_memory_full_rejects_new_objects():
    mem = SceneMemory(MemoryParams(max_objects=2))
    mem.update([obs("a", 0.0), obs("b", 0.3), obs("c", 0.6)], 0.0, G)
    assert len(mem) == 2 and mem.last_report.rejected[0][0] == 2 and "memory full" in mem.last_report.rejected[0][1]
    assert mem.last_report.accepted == 2


def test_concurrent_readers_see_consistent_snapshots():
    mem = SceneMemory()
    errors = []
    stop = threading.Event()

    def writer():
        for k in range(300):
            dx = 0.005 * np.sin(k)
            mem.update([obs("mug", -0.2 + dx), obs("mug", 0.2 + dx), obs("bowl", 0.5 + dx)], 0.01 * k, G)
        stop.set()

    def reader():
        while not stop.is_set():
            snap = mem.snapshot()
            try:
                if snap.objects:
                    assert snap.ids == ("bowl_1", "mug_1", "mug_2")
                    for o in snap.objects:
                        c = snap.gravity.to_gravity(o.center)
                        np.testing.assert_allclose((o.box_min + o.box_max) / 2, c, atol=1e-12)
                        assert o.observations == snap.objects[0].observations
            except AssertionError as err:
                errors.append(err)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert mem.snapshot().objects[0].observations == 300


def _move(points, R, t):
    return np.asarray(points) @ R.T + t


def test_camera_motion_compensation_carries_unseen_objects():
    params = MemoryParams(compensate_motion=True)
    mem = SceneMemory(params)
    centers = {"mug": (-0.3, 0.1, 1.0), "bowl": (0.2, 0.15, 1.2), "box": (0.0, 0.05, 1.6), "can": (0.4, 0.1, 0.9)}
    mem.update([obs(label, *c) for label, c in centers.items()], 0.0, G)
    # the camera turns 8 deg and moves 12 cm: points move by cur = R @ prev + t
    R = Rotation.from_euler("y", 8, degrees=True).as_matrix()
    t = np.array([-0.12, 0.0, 0.03])
    moved = {label: _move(c, R, t) for label, c in centers.items()}
    mem.update([obs(label, *moved[label]) for label in ("mug", "bowl", "box")], 0.1, G)   # the can is not seen
    assert mem.last_report.motion.startswith("applied")
    snap = mem.snapshot()
    assert snap.ids == ("bowl_1", "box_1", "can_1", "mug_1")
    can = snap.by_id("can_1")
    np.testing.assert_allclose(can.center, moved["can"], atol=1e-6)
    assert can.extra["carried"] and not can.extra["visible"]


def test_camera_motion_compensation_can_be_turned_off_and_rejects_inconsistent_motion():
    centers = [(-0.3, 0.1, 1.0), (0.2, 0.15, 1.2), (0.0, 0.05, 1.6)]
    mem = SceneMemory(MemoryParams(compensate_motion=False))
    mem.update([obs(lb, *c) for lb, c in zip("abc", centers)] + [obs("d", 0.4, 0.1, 0.9)], 0.0, G)
    mem.update([obs(lb, c[0] + 0.05, c[1], c[2]) for lb, c in zip("abc", centers)], 0.1, G)
    assert mem.last_report.motion == "off"
    assert mem.snapshot().by_id("d_1").center[0] == pytest.approx(0.4)
    # objects moved independently (not a rigid camera motion): nothing is carried
    mem = SceneMemory()
    mem.update([obs(lb, *c) for lb, c in zip("abc", centers)] + [obs("d", 0.4, 0.1, 0.9)], 0.0, G)
    shifted = [(-0.3 + 0.12, 0.1, 1.0), (0.2, 0.15 - 0.1, 1.2), (0.0, 0.05, 1.6 - 0.12)]
    mem.update([obs(lb, *c) for lb, c in zip("abc", shifted)], 0.1, G)
    assert mem.last_report.motion.startswith("not applied")
    assert mem.snapshot().by_id("d_1").center[0] == pytest.approx(0.4)


def test_rigid_motion_fit_drops_a_moved_object():
    rng = np.random.default_rng(0)
    prev = rng.uniform([-0.5, -0.2, 0.6], [0.5, 0.2, 2.0], size=(6, 3))
    R = Rotation.from_euler("xyz", [2, -6, 1], degrees=True).as_matrix()
    t = np.array([0.05, -0.02, 0.1])
    cur = _move(prev, R, t)
    cur[2] += [0.2, 0.0, 0.0]                                 # someone moved one object
    R_est, t_est, msg = estimate_rigid_motion(prev, cur, MemoryParams())
    assert msg.startswith("applied") and "5 matches" in msg
    np.testing.assert_allclose(R_est, R, atol=1e-9)
    np.testing.assert_allclose(t_est, t, atol=1e-9)
    collinear = np.array([[0, 0, 1.0], [0.1, 0, 1.0], [0.2, 0, 1.0]])
    assert estimate_rigid_motion(collinear, collinear + 0.1, MemoryParams())[0] is None


def test_id_prefix_and_bad_params():
    assert id_prefix("Red Object") == "red_object" and id_prefix("wine-glass #2") == "wine_glass_2"
    assert id_prefix("???") == "object"
    with pytest.raises(InputError):
        SceneMemory(MemoryParams(timeout_s=0))
    with pytest.raises(InputError):
        SceneMemory(MemoryParams(alpha=1.5))


def test_huge_finite_points_are_kept_and_only_non_finite_rows_dropped():
    o = obs("mug", 0.0)
    o.points[:] = 1e308
    o.points[0] = np.nan
    mem = SceneMemory()
    mem.update([o], 0.0, G)
    pts = mem.snapshot().objects[0].points
    assert len(pts) == len(o.points) - 1 and np.all(pts == 1e308)


def test_small_rotation_about_the_objects_is_static_but_a_real_one_is_applied():
    """A static camera's noise fits a small rotation about the objects, whose translation at the camera
    center is large; what counts is how far the fit moves the matched centers."""
    prev = np.array([(-0.3, 0.1, 1.0), (0.2, 0.15, 1.2), (0.0, 0.05, 1.6), (0.4, 0.1, 0.9)])
    pivot = prev.mean(axis=0)
    for angle, static in ((0.3, True), (2.0, False)):
        R = Rotation.from_euler("y", angle, degrees=True).as_matrix()
        t = pivot - R @ pivot                     # turned about the objects' centroid: |t| ~ angle * 1.2 m
        R_est, t_est, msg = estimate_rigid_motion(prev, _move(prev, R, t), MemoryParams())
        assert np.linalg.norm(t) > MemoryParams().motion_min_translation_m
        assert msg.startswith("static") == static, msg

"""SceneMemory with default parameters on lifted analytic renders: a moving camera keeps the objects' centers
right (seen ones and one left out of the last frame), a static camera's noise is not taken for motion."""
import numpy as np

from spatial_vlm_ros.core.lifting import lift_instances
from spatial_vlm_ros.core.memory import SceneMemory
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.sim.analytic import BoxObject, CameraPose, CylinderObject, render

OBJECTS = (BoxObject("box", (-0.25, 0.05), (0.12, 0.1, 0.15)), CylinderObject("can", (0.0, -0.05), 0.035, 0.12),
           BoxObject("book", (0.25, 0.1), (0.15, 0.2, 0.04)), CylinderObject("mug", (0.1, 0.2), 0.045, 0.1))


def _frame(pose: CameraPose, seed: int):
    return render(OBJECTS, pose, noise=DepthNoiseModel(), seed=seed)


def _update(mem: SceneMemory, frame, stamp: float, leave_out=()):
    instances = [i for i in frame.instances() if i.label not in leave_out]
    observations, warnings = lift_instances(frame.depth, frame.camera, instances, frame.gravity, rgb=frame.rgb)
    assert not warnings
    mem.update(observations, stamp, frame.gravity)
    return mem.last_report.motion


def _center_errors_m(mem: SceneMemory, frame) -> dict[str, float]:
    truth = {t.label: t.center_c for t in frame.objects}
    return {o.label: float(np.linalg.norm(o.center - truth[o.label])) for o in mem.snapshot().objects}


def test_moving_camera_keeps_centers_in_the_latest_frame():
    poses = (CameraPose(), CameraPose(yaw_deg=6, distance=0.95, height=0.62),
             CameraPose(yaw_deg=12, distance=1.0, height=0.64))
    mem = SceneMemory()
    for k, pose in enumerate(poses):
        frame = _frame(pose, seed=k)
        motion = _update(mem, frame, 0.1 * k, leave_out=("mug",) if k == 2 else ())
        assert k == 0 or motion.startswith("applied"), motion
    errors = _center_errors_m(mem, frame)
    assert set(errors) == {"box", "can", "book", "mug"}
    assert max(errors.values()) < 0.01, errors         # averaged across poses they were 3-8 cm off
    mug = mem.snapshot().by_id("mug_1")
    assert mug.extra["carried"] and not mug.extra["visible"]
    np.testing.assert_allclose((mug.box_min + mug.box_max) / 2, frame.gravity.to_gravity(mug.center), atol=1e-9)


def test_static_camera_noise_is_not_taken_for_motion():
    mem = SceneMemory()
    motions = [_update(mem, _frame(CameraPose(), seed=k), 0.1 * k) for k in range(8)]
    assert all(m.startswith("static") for m in motions[1:]), motions
    frame = _frame(CameraPose(), seed=0)
    assert max(_center_errors_m(mem, frame).values()) < 0.005

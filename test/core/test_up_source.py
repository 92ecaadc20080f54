"""Where up came from: the gravity frame says so (``up_from``, ``assumed``), and while up is assumed rather
than measured every geometric answer says so in its message and its sentence."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.core.frame import Frame, Segmentation
from spatial_vlm_ros.core.gravity import GravityEstimator, GravityParams
from spatial_vlm_ros.core.spatial_queries import SpatialQueries
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig
from spatial_vlm_ros.sim import analytic
from spatial_vlm_ros.sim.analytic import CameraPose, random_tabletop, render

LEVEL_XYZW = (-0.5, 0.5, -0.5, 0.5)     # the ROS parameter's default static orientation: a level camera
OBJECTS = [analytic.BoxObject("box", (-0.15, 0.05), (0.12, 0.12, 0.20)),
           analytic.CylinderObject("mug", (0.15, 0.05), 0.04, 0.10)]
SCENE = analytic.render(OBJECTS, camera=analytic.default_camera(320, 240))
ASSUMED = "up was assumed (level camera (static orientation parameter)), not measured from a support plane"


def _frame(stamp: float, table_visible: bool = True) -> Frame:
    depth = SCENE.depth if table_visible else np.where(SCENE.mask > 0, SCENE.depth, np.nan)   # objects only
    return Frame(rgb=SCENE.rgb, depth=encode_depth_mm(depth), depth_encoding="16UC1", camera=SCENE.camera,
                 stamp=stamp, segmentation=Segmentation(SCENE.mask, SCENE.ids, SCENE.labels, [1.0] * len(SCENE.ids)))


def test_the_estimator_says_where_up_came_from():
    good = render(random_tabletop(4, seed=2), CameraPose(height=0.7, pitch_deg=35))
    blind = np.full_like(good.depth, np.nan)
    est = GravityEstimator(static_orientation=LEVEL_XYZW, max_hold_frames=1)
    g = est.update(good.depth, good.camera)
    assert (g.up_from, g.assumed) == ("support plane", False)
    g = est.update(good.depth, good.camera)
    assert (g.up_from, g.assumed) == ("tracked support plane", False)
    g = est.update(blind, good.camera)
    assert (g.up_from, g.assumed) == ("held support plane", False)
    g = est.update(blind, good.camera)               # the level static pose the parameters always pass
    assert g.assumed and g.up_from == "level camera (static orientation parameter)", g
    assert "up assumed from the level camera" in est.status
    pitched = Rotation.from_matrix(good.pose.rotation()).as_quat()
    g = GravityEstimator(static_orientation=pitched).update(blind, good.camera)
    assert g.assumed and g.up_from == "static orientation parameter"
    g = GravityEstimator().update(blind, good.camera)
    assert g.assumed and g.up_from == "level camera"
    g = GravityEstimator(mode="camera").update(good.depth, good.camera)
    assert g.assumed and g.up_from == "level camera"
    g = GravityEstimator(mode="static", static_orientation=pitched).update(blind, good.camera)
    assert not g.assumed and g.up_from == "static orientation parameter"   # configured, not a fallback


@pytest.fixture()
def pipeline():
    return FramePipeline(PipelineConfig(gravity=GravityParams(static_orientation=LEVEL_XYZW)))


def test_answers_say_up_was_assumed_without_a_support_plane(pipeline):
    result = pipeline.process(_frame(1.0, table_visible=False))
    assert len(result.objects) == 2
    queries = SpatialQueries(pipeline.memory)
    answers = [queries.get_relation("mug", "above", "box"), queries.measure("height", "box"),
               queries.measure("vertical_distance", "box", "mug"), queries.ask("Is the box taller than the mug?"),
               queries.ask("How tall is the box?"), queries.ask("How much taller is the box than the mug?"),
               queries.ask("Which is taller, the box or the mug?"), queries.ask("Where is the mug?"),
               queries.ask("What are the dimensions of the box?")]
    for a in answers:
        assert a.success, a.message
        assert ASSUMED in a.message, a.message
        assert a.answer.endswith(ASSUMED[0].upper() + ASSUMED[1:] + "."), a.answer
    listed = queries.ask("How many objects are there?")
    assert listed.success and "assumed" not in listed.message + listed.answer   # no geometry in a count


def test_answers_carry_no_note_when_up_was_measured(pipeline):
    result = pipeline.process(_frame(1.0))
    assert not result.gravity.assumed and result.gravity.up_from == "support plane"
    queries = SpatialQueries(pipeline.memory)
    for a in (queries.get_relation("mug", "above", "box"), queries.ask("How tall is the box?")):
        assert a.success and "assumed" not in a.message + a.answer, a
    pipeline.process(_frame(2.0, table_visible=False))   # held: the plane measured a frame ago
    a = queries.ask("How tall is the box?")
    assert pipeline.memory.snapshot().gravity.up_from == "held support plane" and "assumed" not in a.answer

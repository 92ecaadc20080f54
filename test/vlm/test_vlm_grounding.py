"""The grounding prompt: measured objects, sizes, ranges, base heights and center distances."""
import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.observation import TrackedObject
from spatial_vlm_ros.core.scene import Scene
from spatial_vlm_ros.vlm.engine import ObjectBox
from spatial_vlm_ros.vlm.grounding import box_facts, scene_facts


def _obj(oid, label, center, size=(0.1, 0.1, 0.1), bottom=-0.5):
    c = np.array(center, dtype=float)
    s = np.array(size, dtype=float)
    return TrackedObject(id=oid, label=label, score=0.9, center=c, size=s,
                         box_min=np.array([0.0, 0.0, bottom]), box_max=np.array([0.0, 0.0, bottom]) + s,
                         points=np.zeros((0, 3)))


def test_scene_facts_format_and_numbers():
    mug = _obj("mug_1", "red mug", (0.3, 0.0, 0.4), (0.08, 0.08, 0.1), bottom=-0.5)
    bowl = _obj("bowl_1", "bowl", (0.0, 0.0, 0.8), (0.15, 0.15, 0.06), bottom=-0.38)
    scene = Scene(objects=(mug, bowl), gravity=GravityFrame.from_up([0, -1, 0], support_height=-0.5))
    text = scene_facts(scene)
    lines = text.splitlines()
    assert lines[0].startswith("Measured scene (depth camera; metres;") and "base = bottom" in lines[0]
    assert lines[1] == '- mug_1 "red mug": center (0.30, 0.00, 0.40), size 0.08x0.08x0.10, range 0.50, base 0.00'
    assert lines[2] == '- bowl_1 "bowl": center (0.00, 0.00, 0.80), size 0.15x0.15x0.06, range 0.80, base 0.12'
    assert lines[3] == "Distances between centers: mug_1-bowl_1 0.50"      # 3-4-5 triangle
    assert len(lines) == 4


def test_scene_facts_without_support_and_with_limit():
    objects = [_obj(f"box_{i}", "box", (0.1 * i, 0.0, 1.0 + i)) for i in range(5)]
    text = scene_facts(objects, max_objects=3, decimals=3)
    assert "base" not in text
    assert "box_3" not in text and "box_4" not in text            # the farthest are dropped
    assert "box_0-box_1 1.005" in text and "box_0-box_2 2.010" in text
    assert text.splitlines()[-1] == "(2 farther objects not listed)"
    assert scene_facts([]) == ""


def test_scene_facts_rejects_bad_input():
    with pytest.raises(InputError):
        scene_facts([_obj("a_1", "a", (np.nan, 0.0, 1.0))])
    with pytest.raises(InputError):
        scene_facts([_obj("a_1", "a", (0.0, 0.0, 1.0))], max_objects=0)


def test_box_facts_uses_median_valid_depth():
    depth = np.full((10, 10), np.nan, dtype=np.float32)
    depth[0:5, 0:5] = 1.0
    depth[0, 0] = 9.0          # one outlier: the median ignores it
    depth[5:, 5:] = 0.0        # invalid readings
    text = box_facts([ObjectBox("mug", (0, 0, 4, 4)), ObjectBox("bowl", (5, 5, 9, 9))], depth)
    assert "- mug: [0, 0, 4, 4], depth 1.00" in text
    assert "- bowl: [5, 5, 9, 9], no valid depth" in text
    assert box_facts([ObjectBox("mug", (0, 0, 4, 4))]).endswith("- mug: [0, 0, 4, 4]")
    with pytest.raises(InputError):
        box_facts([ObjectBox("mug", (4, 4, 0, 0))])

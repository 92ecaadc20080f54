"""Tabletop detector (plane removal + grid clustering) and colour naming, on analytic scenes."""
import numpy as np
import pytest

from spatial_vlm_ros.core.colors import COLOR_NAMES, color_name
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity import GravityEstimator
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.lifting import lift_instances
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.perception.base import Detector
from spatial_vlm_ros.perception.tabletop import TabletopDetector
from spatial_vlm_ros.sim.analytic import BoxObject, CameraPose, CylinderObject, random_tabletop, render


def match(frame, instances):
    """(truth id, IoU) of the rendered object that each detected mask mostly covers."""
    out = []
    for inst in instances:
        ids, counts = np.unique(frame.mask[inst.mask], return_counts=True)
        best = int(ids[np.argmax(counts)])
        truth = frame.mask == best
        out.append((best, (truth & inst.mask).sum() / (truth | inst.mask).sum() if best else 0.0))
    return out


@pytest.mark.parametrize("seed, noisy, pose", [
    (0, False, CameraPose()), (1, True, CameraPose()), (4, False, CameraPose()),
    (2, True, CameraPose(height=0.9, pitch_deg=50, distance=0.7)),
])
def test_finds_each_separated_object_once(seed, noisy, pose):
    noise = dict(noise=DepthNoiseModel(), edge_holes=0.3, seed=seed) if noisy else {}
    frame = render(random_tabletop(8, seed=seed), pose, **noise)
    gravity = GravityEstimator().update(frame.depth, frame.camera)
    detector = TabletopDetector()
    assert isinstance(detector, Detector) and detector.name == "tabletop"
    instances = detector.detect(frame.rgb, frame.depth, frame.camera, gravity)
    matches = match(frame, instances)
    assert sorted(m[0] for m in matches) == list(range(1, 9))          # all 8, each once, nothing else
    assert min(m[1] for m in matches) > 0.6                            # bottoms below 12 mm are cut off
    for inst, (truth_id, _) in zip(instances, matches):
        assert inst.label == f"{color_name(frame.truth(truth_id).color)} object"
        assert inst.score == 1.0
    assert [i.instance_id for i in instances] == list(range(1, 9))
    assert "8 object(s)" in detector.status


def test_lifted_tabletop_objects_stand_on_the_table():
    frame = render(random_tabletop(6, seed=7), CameraPose())
    gravity = GravityEstimator().update(frame.depth, frame.camera)
    instances = TabletopDetector().detect(frame.rgb, frame.depth, frame.camera, gravity)
    obs, warnings = lift_instances(frame.depth, frame.camera, instances, gravity, rgb=frame.rgb)
    assert warnings == [] and len(obs) == 6
    for o, (truth_id, _) in zip(obs, match(frame, instances)):
        t = frame.truth(truth_id)
        assert abs(o.box_min[2] - t.box_min_g[2]) < 0.005              # snapped onto the support
        assert abs(o.size[2] - t.size[2]) < 0.005                      # height of the object
        assert o.color_name == color_name(t.color)


def test_same_colour_objects_get_size_words():
    objects = [BoxObject("a", (-0.2, 0.0), (0.05, 0.05, 0.05), color=(210, 35, 35)),
               CylinderObject("b", (0.15, 0.05), 0.07, 0.25, color=(210, 35, 35)),
               BoxObject("c", (0.0, -0.15), (0.12, 0.08, 0.1), color=(40, 70, 210))]
    frame = render(objects, CameraPose())
    instances = TabletopDetector().detect(frame.rgb, frame.depth, frame.camera, frame.gravity)
    labels = {frame.labels[m[0] - 1]: i.label for i, m in zip(instances, match(frame, instances))}
    assert labels == {"a": "small red object", "b": "large red object", "c": "blue object"}
    # Without colour the objects are just "object"s, with size words.
    unnamed = TabletopDetector().detect(None, frame.depth, frame.camera, frame.gravity)
    assert sorted(i.label for i in unnamed) == ["large object", "medium object", "small object"]


def test_fits_its_own_plane_when_gravity_is_only_assumed():
    frame = render(random_tabletop(5, seed=3), CameraPose(pitch_deg=45))
    instances = TabletopDetector().detect(frame.rgb, frame.depth, frame.camera, GravityFrame.camera_default())
    assert sorted(m[0] for m in match(frame, instances)) == [1, 2, 3, 4, 5]


def test_no_support_plane_gives_no_objects():
    frame = render(random_tabletop(3, seed=0), CameraPose())
    detector = TabletopDetector()
    blind = np.full_like(frame.depth, np.nan)
    assert detector.detect(frame.rgb, blind, frame.camera, GravityFrame.camera_default()) == []
    assert "no support plane" in detector.status


def test_size_mismatch_raises_input_error():
    frame = render([], CameraPose())
    with pytest.raises(InputError, match="camera_info says 640x480"):
        TabletopDetector().detect(None, frame.depth[:240], frame.camera, frame.gravity)
    with pytest.raises(InputError, match="decode_depth"):
        TabletopDetector().detect(None, np.zeros((480, 640), np.uint16), frame.camera, frame.gravity)
    with pytest.raises(InputError, match="colour image is 320x240"):
        TabletopDetector().detect(frame.rgb[:240, :320], frame.depth, frame.camera, frame.gravity)


@pytest.mark.parametrize("rgb, name", [
    ((210, 35, 35), "red"), ((240, 130, 20), "orange"), ((120, 70, 20), "brown"), ((230, 200, 30), "yellow"),
    ((35, 160, 50), "green"), ((40, 190, 200), "cyan"), ((40, 70, 210), "blue"), ((150, 50, 180), "purple"),
    ((230, 90, 160), "pink"), ((245, 245, 240), "white"), ((128, 128, 128), "gray"), ((20, 20, 25), "black"),
])
def test_color_names(rgb, name):
    assert name in COLOR_NAMES
    assert color_name(rgb) == name

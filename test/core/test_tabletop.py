"""Tabletop detector (plane removal + grid clustering) and color naming, on analytic scenes."""
from dataclasses import replace

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
from spatial_vlm_ros.sim.analytic import BoxObject, CameraPose, CylinderObject, random_tabletop, render, top_of


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


def test_same_color_objects_get_size_words():
    objects = [BoxObject("a", (-0.2, 0.0), (0.05, 0.05, 0.05), color=(210, 35, 35)),
               CylinderObject("b", (0.15, 0.05), 0.07, 0.25, color=(210, 35, 35)),
               BoxObject("c", (0.0, -0.15), (0.12, 0.08, 0.1), color=(40, 70, 210))]
    frame = render(objects, CameraPose())
    instances = TabletopDetector().detect(frame.rgb, frame.depth, frame.camera, frame.gravity)
    labels = {frame.labels[m[0] - 1]: i.label for i, m in zip(instances, match(frame, instances))}
    assert labels == {"a": "small red object", "b": "large red object", "c": "blue object"}
    # Without color the objects are just "object"s, with size words.
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
    with pytest.raises(InputError, match=r"depth image: expected 640x480 \(camera_info\), got 640x240"):
        TabletopDetector().detect(None, frame.depth[:240], frame.camera, frame.gravity)
    with pytest.raises(InputError, match="decode_depth"):
        TabletopDetector().detect(None, np.zeros((480, 640), np.uint16), frame.camera, frame.gravity)
    with pytest.raises(InputError, match="color image is 320x240"):
        TabletopDetector().detect(frame.rgb[:240, :320], frame.depth, frame.camera, frame.gravity)


@pytest.mark.parametrize("rgb, name", [
    ((210, 35, 35), "red"), ((240, 130, 20), "orange"), ((120, 70, 20), "brown"), ((230, 200, 30), "yellow"),
    ((35, 160, 50), "green"), ((40, 190, 200), "cyan"), ((40, 70, 210), "blue"), ((150, 50, 180), "purple"),
    ((230, 90, 160), "pink"), ((245, 245, 240), "white"), ((128, 128, 128), "gray"), ((20, 20, 25), "black"),
    # bright pastels keep their hue (a pastel red is pink); warm or cool off-whites stay white
    ((250, 205, 215), "pink"), ((240, 200, 200), "pink"), ((200, 215, 245), "blue"), ((205, 240, 205), "green"),
    ((250, 240, 225), "white"), ((230, 235, 245), "white"), ((170, 160, 150), "gray"),
])
def test_color_names(rgb, name):
    assert name in COLOR_NAMES
    assert color_name(rgb) == name


# ---- issue 7: stacks, small objects, depth dropouts (analytic scenes; geometry checks, no learned parts)
def _detect(frame, **params):
    from spatial_vlm_ros.perception.tabletop import TabletopParams
    return TabletopDetector(TabletopParams(**params)).detect(frame.rgb, frame.depth, frame.camera, frame.gravity)


def _stack_scene(top_color=(40, 160, 60)):
    book = BoxObject("book", (0.0, 0.0), (0.22, 0.16, 0.04), color=(200, 40, 40))
    mug = CylinderObject("mug", (0.01, 0.0), 0.04, 0.09, base_z=top_of(book), color=top_color)
    side = BoxObject("box", (0.3, 0.1), (0.08, 0.08, 0.08), color=(40, 70, 210))
    return [book, mug, side]


@pytest.mark.parametrize("noisy", [False, True])
def test_object_resting_on_another_is_its_own_instance(noisy):
    noise = dict(noise=DepthNoiseModel(), edge_holes=0.3, seed=5) if noisy else {}
    frame = render(_stack_scene(), CameraPose(pitch_deg=40), **noise)
    instances = _detect(frame)
    matches = match(frame, instances)
    assert sorted(m[0] for m in matches) == [1, 2, 3]                 # book, mug on it, box: 3 objects
    assert min(m[1] for m in matches) > 0.6
    # the old behaviour (no split) merges the mug into the book: the test would catch a regression
    merged = _detect(frame, stack_split=False)
    assert sorted(m[0] for m in match(frame, merged)) == [1, 3]


def test_stack_lifts_to_the_upper_object_standing_on_the_lower_one():
    frame = render(_stack_scene(), CameraPose(pitch_deg=40))
    instances = _detect(frame)
    obs, warnings = lift_instances(frame.depth, frame.camera, instances, frame.gravity, rgb=frame.rgb)
    by_truth = {m[0]: o for o, m in zip(obs, match(frame, instances))}
    book, mug = frame.truth(1), frame.truth(2)
    assert abs(by_truth[1].box_max[2] - book.box_max_g[2]) < 0.01     # the book's top is not the mug's
    assert abs(by_truth[2].box_max[2] - mug.box_max_g[2]) < 0.01
    assert by_truth[2].box_min[2] > book.box_max_g[2] - 0.02          # the mug starts at the book's top


def test_same_colored_parts_of_one_object_are_not_split():
    # one color above and below the face: the cut needs a color edge too (a bowl's inner bottom, a
    # mug's rim or a toy's lap are faces of one object), so this stack stays one instance beside the box
    frame = render(_stack_scene(top_color=(200, 40, 40)), CameraPose(pitch_deg=40))
    instances = _detect(frame)
    assert len(instances) == 2 and 3 in [m[0] for m in match(frame, instances)]


def test_small_object_of_about_80_pixels_is_found():
    objects = [BoxObject("big", (-0.15, 0.0), (0.1, 0.1, 0.12), color=(200, 40, 40)),
               BoxObject("small", (0.2, 0.05), (0.018, 0.018, 0.028), color=(40, 160, 60))]
    frame = render(objects, CameraPose(distance=1.2, height=0.7))
    pixels = int((frame.mask == 2).sum())
    assert 70 <= pixels <= 160, pixels                                # what the requirement is about
    found = sorted(m[0] for m in match(frame, _detect(frame)))
    assert found == [1, 2]
    assert sorted(m[0] for m in match(frame, _detect(frame, min_pixels=150))) == [1]   # the old default lost it


def test_depth_dropouts_do_not_break_an_object_into_pieces():
    frame = render([BoxObject("dark", (0.0, 0.0), (0.15, 0.12, 0.1), color=(25, 25, 30))], CameraPose())
    rng = np.random.default_rng(0)
    obj = frame.mask == 1
    depth = frame.depth.copy()
    # dropouts on the dark surface: random one-pixel holes plus two hole lines across it
    depth[obj & (rng.uniform(size=obj.shape) < 0.25)] = np.nan
    rows = np.nonzero(obj.any(axis=1))[0]
    cols = np.nonzero(obj.any(axis=0))[0]
    for r in (rows[len(rows) // 3], rows[2 * len(rows) // 3]):
        depth[r:r + 2, :][obj[r:r + 2, :]] = np.nan
    depth[:, cols[len(cols) // 2]][obj[:, cols[len(cols) // 2]]] = np.nan
    instances = TabletopDetector().detect(frame.rgb, depth, frame.camera, frame.gravity)
    assert len(instances) == 1 and match(frame, instances)[0][0] == 1
    pieces = TabletopDetector(replace(TabletopDetector().params, hole_bridge_px=0)).detect(
        frame.rgb, depth, frame.camera, frame.gravity)
    assert len(pieces) > 1                                            # without joining it would fall apart


def test_speckled_dark_object_under_a_bright_one_is_found():
    # a ToF camera loses most returns on a black block (seen held out: a can standing on such a block);
    # the block's speckle pieces are bridged to the can through the holes, and must join each other
    block = BoxObject("block", (0.0, 0.0), (0.15, 0.14, 0.05), color=(20, 20, 22))
    can = CylinderObject("can", (0.0, 0.0), 0.037, 0.12, base_z=top_of(block), color=(200, 30, 30))
    frame = render([block, can], CameraPose(pitch_deg=40))
    rng = np.random.default_rng(3)
    depth = frame.depth.copy()
    dark = frame.mask == 1
    depth[dark & (rng.uniform(size=dark.shape) < 0.6)] = np.nan
    instances = TabletopDetector().detect(frame.rgb, depth, frame.camera, frame.gravity)
    matches = match(frame, instances)
    assert sorted(m[0] for m in matches) == [1, 2]
    block_mask = next(i.mask for i, m in zip(instances, matches) if m[0] == 1)
    assert (block_mask & dark).sum() > 0.3 * dark.sum()               # ~40 % of its pixels have depth

"""The naive baseline: median depth point per mask, camera up, the core's definitions, no uncertainty."""
import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.evaluation.baseline import (
    NAME,
    NO_DEPTH,
    NO_MASK,
    DepthFrame,
    baseline_object,
    camera_from_info,
    evaluate_baseline,
    frame_objects,
)
from spatial_vlm_ros.evaluation.report import RunResult, write_report
from spatial_vlm_ros.evaluation.scoring import summarize

W, H, F, CX, CY = 320, 240, 500.0, 160.0, 120.0
INFO = {"width": W, "height": H, "k": [F, 0, CX, 0, F, CY, 0, 0, 1], "d": [0.0] * 5,
        "distortion_model": "plumb_bob"}


def _planes():
    """Two fronto-parallel rectangles: A (u 50-99, v 100-139, z 1.0 m), B (u 200-249, v 80-139, z 1.2 m)."""
    depth = np.full((H, W), np.nan, np.float32)
    mask = np.zeros((H, W), np.uint16)
    depth[100:140, 50:100], mask[100:140, 50:100] = 1.0, 1
    depth[80:140, 200:250], mask[80:140, 200:250] = 1.2, 2
    return depth, mask


def _gt(extra_objects=()):
    objs = [{"id": "a_1", "label": "box", "instance_id": 1}, {"id": "b_1", "label": "box", "instance_id": 2}]
    objs += list(extra_objects)
    return {"stamp_ns": 5_000_000_000, "scene_id": "s", "objects": objs,
            "relations": [{"relation": "left_of", "subject": "a_1", "reference": "b_1", "holds": True},
                          {"relation": "right_of", "subject": "a_1", "reference": "b_1", "holds": False},
                          {"relation": "higher_than", "subject": "b_1", "reference": "a_1", "holds": True}],
            "quantities": [{"quantity": "distance", "subject": "a_1", "reference": "b_1", "value_m": 0.5},
                           {"quantity": "width", "subject": "a_1", "reference": None, "value_m": 0.1}]}


def _median_point(u0, u1, v0, v1, z):
    # pixel centers at integer coordinates; the median of an even run is the midpoint of its middle pair
    return np.array([((u0 + u1 - 1) / 2 - CX) / F * z, ((v0 + v1 - 1) / 2 - CY) / F * z, z])


def test_objects_are_median_points_with_camera_up_and_percentile_boxes():
    depth, mask = _planes()
    scene, missing = frame_objects(DepthFrame(_gt(), depth, mask, camera_from_info(INFO)))
    assert missing == {} and scene.gravity.source == "camera"
    np.testing.assert_allclose(scene.gravity.up, [0.0, -1.0, 0.0], atol=1e-12)
    a, b = scene.by_id("a_1"), scene.by_id("b_1")
    np.testing.assert_allclose(a.center, _median_point(50, 100, 100, 140, 1.0), atol=2e-3)
    np.testing.assert_allclose(b.center, _median_point(200, 250, 80, 140, 1.2), atol=2e-3)
    # extents: 2nd-98th percentile of the pixel coordinates (at 1 m, 1 px = 1 / F m)
    v, u = np.nonzero(mask == 1)
    spread = lambda x: (np.percentile(x, 98) - np.percentile(x, 2)) / F  # noqa: E731
    assert spread(u) < 49 / F and spread(v) <= 39 / F                   # inside the full extents
    assert a.size[0] == pytest.approx(spread(u), abs=1e-4)
    assert a.size[2] == pytest.approx(spread(v), abs=1e-4)              # height along camera -y
    assert a.size[1] == pytest.approx(0.0, abs=1e-6)                 # a plane has no depth extent
    assert a.n_pixels == 50 * 40


def test_evaluate_baseline_answers_with_core_definitions_and_no_uncertainty():
    depth, mask = _planes()
    recs = evaluate_baseline([DepthFrame(_gt(), depth, mask, camera_from_info(INFO))])
    by = {(r.relation_or_quantity, r.subject_id): r for r in recs}
    assert all(r.success and r.detector == NAME for r in recs)
    assert by[("left_of", "a_1")].predicted is True and by[("right_of", "a_1")].predicted is False
    assert by[("higher_than", "b_1")].predicted is True
    expected = np.linalg.norm(_median_point(50, 100, 100, 140, 1.0) - _median_point(200, 250, 80, 140, 1.2))
    assert by[("distance", "a_1")].predicted == pytest.approx(expected, abs=3e-3)
    assert all(r.confidence is None and r.uncertainty is None for r in recs)
    s = summarize(recs)
    assert s["relations"]["overall"]["n"] == 2              # left_of and right_of: one fact
    assert s["relations"]["overall"]["calibration"]["n"] == 0
    assert s["quantities"]["overall"]["coverage_2sigma"]["n"] == 0


def test_objects_without_depth_or_instance_id_fail_clearly():
    depth, mask = _planes()
    depth[mask == 2] = np.nan                                 # B has no valid depth
    gt = _gt([{"id": "c_1", "label": "cup"}])                 # no instance_id
    gt["relations"].append({"relation": "left_of", "subject": "c_1", "reference": "a_1", "holds": True})
    recs = evaluate_baseline([DepthFrame(gt, depth, mask, camera_from_info(INFO))])
    about_b = [r for r in recs if "b_1" in (r.subject_id, r.reference_id)]
    assert about_b and all(not r.success and r.predicted is None and NO_DEPTH in r.message for r in about_b)
    about_c = [r for r in recs if "c_1" in (r.subject_id, r.reference_id)]
    assert about_c and all(not r.success and NO_MASK in r.message for r in about_c)
    assert baseline_object("x", "x", np.full((3, 3), np.nan)) is None
    with pytest.raises(InputError, match="mask"):
        DepthFrame(gt, depth, mask[:10], camera_from_info(INFO))
    with pytest.raises(InputError, match="camera_info"):
        camera_from_info({"width": 3})


def test_baseline_on_rendered_scenes_answers_every_question():
    from spatial_vlm_ros.sim.dataset import GeneratorConfig, iter_scenes
    scenes = list(iter_scenes(1, seed=11, cfg=GeneratorConfig(width=320, height=240)))
    frames = [DepthFrame.from_dataset(s.frames[-1]) for s in scenes]
    recs = evaluate_baseline(frames)
    n_truth = sum(len(f.ground_truth["relations"]) + len(f.ground_truth["quantities"]) for f in frames)
    assert 0 < len(recs) <= n_truth
    assert all(r.success for r in recs)
    s = summarize(recs)
    assert 0.5 < s["relations"]["overall"]["accuracy"] <= 1.0
    unique = evaluate_baseline(frames, unique_labels=True)
    assert len(unique) <= len(recs)


def test_report_shows_the_baseline_beside_the_package(tmp_path):
    depth, mask = _planes()
    recs = evaluate_baseline([DepthFrame(_gt(), depth, mask, camera_from_info(INFO))])
    pkg = evaluate_baseline([DepthFrame(_gt(), depth, mask, camera_from_info(INFO))])
    for r in pkg:
        r.detector, r.confidence, r.uncertainty = "external", 0.9, 0.05
    runs = [RunResult("external", summarize(pkg), pkg), RunResult(NAME, summarize(recs), recs)]
    paths = write_report(tmp_path, runs)
    md = paths["markdown"].read_text()
    assert f"| | external | {NAME} |" in md and f"## {NAME}" in md
    assert "relation confidence ECE" in md and "No confidences or uncertainties reported" in md

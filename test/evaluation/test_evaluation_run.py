"""An evaluation run on a tiny simulated bag through the real node, its services and the report.

ROS test: run through ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/evaluation``.
"""
import json
import shutil

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("spatial_vlm_interfaces.msg", reason="run under scripts/ros_env.sh (needs install/)")

from spatial_vlm_ros.bag.writer import write_bag  # noqa: E402
from spatial_vlm_ros.core.errors import InputError  # noqa: E402
from spatial_vlm_ros.evaluation.baseline import NAME  # noqa: E402
from spatial_vlm_ros.evaluation.facts import merge_facts  # noqa: E402
from spatial_vlm_ros.evaluation.records import QueryRecord  # noqa: E402
from spatial_vlm_ros.evaluation.runner import evaluate  # noqa: E402
from spatial_vlm_ros.evaluation.scoring import summarize  # noqa: E402
from spatial_vlm_ros.sim.dataset import GeneratorConfig, iter_scenes  # noqa: E402


@pytest.fixture(scope="module")
def tiny_bag(tmp_path_factory):
    """1 scene of 6 objects x 2 frames (moving camera, noisy depth) at 320x240, with its ground-truth sidecar
    (about 110 relation facts and 57 quantities about the objects the node knows)."""
    cfg = GeneratorConfig(width=320, height=240, frames_per_scene=2)
    return write_bag(list(iter_scenes(1, seed=0, cfg=cfg)), tmp_path_factory.mktemp("bags") / "tiny")


def test_evaluation_run_scores_real_service_answers(tiny_bag, tmp_path):
    # a user-made copy of the ground truth in which one object carries a label the node has never seen
    doc = json.loads((tiny_bag / "ground_truth.json").read_text())
    frames = list(doc["frames"].values())
    renamed = frames[-1]["objects"][0]
    renamed["label"] = "unicorn"
    gt_path = tmp_path / "user_ground_truth.json"
    gt_path.write_text(json.dumps(doc))

    summary = evaluate(tiny_bag, gt_path, tmp_path / "out", detector="external", progress=False,
                       parameter_overrides={"memory.compensate_motion": True})

    assert summary["frames"]["published"] == 2
    assert summary["frames"]["processed"] >= 1
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    records = results["runs"]["external"]["records"]
    last = frames[-1]
    truth = {(r["relation"], r["subject"], r["reference"]): r["holds"] for r in last["relations"]}
    rel = [r for r in records if r["kind"] == "relation"]
    assert len(rel) == len(last["relations"])           # every ground-truth relation was asked
    for r in rel:
        assert r["truth"] == truth[(r["relation_or_quantity"], r["subject_id"], r["reference_id"])]
    # questions about the unknown label fail with the node's message, and count as wrong
    unknown = [r for r in records if renamed["id"] in (r["subject_id"], r["reference_id"])]
    assert unknown and all(not r["success"] and "unicorn" in r["message"] for r in unknown)
    assert all(r["success"] for r in records if r not in unknown)
    overall = summary["relations"]["overall"]
    unknown_facts = merge_facts(QueryRecord.from_dict(r) for r in unknown if r["kind"] == "relation")
    assert overall["n_failed"] == sum(not f.ambiguous for f in unknown_facts) > 0      # each fact once
    # accuracy on what the node knows, each fact once, a few points under the README's claims (relations
    # 99.5 %, metric within [0.5x, 2x] 99.9 %, distances within +-10 % 96.8 %, at 640x480); metric within
    # +-25 % (claimed 96.8 %) is lower on this 320x240 bag, so its bound sits under what it gets here
    known = summarize([QueryRecord.from_dict(r) for r in records if r not in unknown])
    accuracy_known = known["relations"]["overall"]["accuracy"]
    assert known["relations"]["overall"]["n_scored"] >= 100
    assert accuracy_known >= 0.97
    assert overall["accuracy"] < accuracy_known                   # failures are not silently dropped
    metric = known["quantities"]["overall"]
    assert metric["within_half_double"] >= 0.95 and metric["within_25pct"] >= 0.86
    assert known["quantities"]["per_quantity"]["distance"]["within_10pct"] >= 0.93
    # the naive baseline answers the same questions on the same frames, and the package beats it
    baseline = summary["baseline"]
    assert baseline["relations"]["overall"]["n"] == summary["relations"]["overall"]["n"]
    assert baseline["relations"]["overall"]["calibration"]["n"] == 0           # it reports no confidence
    base_known = summarize([QueryRecord.from_dict(r) for r in results["runs"][NAME]["records"]
                            if renamed["id"] not in (r["subject_id"], r["reference_id"])])
    assert base_known["relations"]["overall"]["accuracy"] <= accuracy_known - 0.05
    distance = summary["quantities"]["per_quantity"]["distance"]
    assert distance["n_failed"] == sum(r["kind"] == "quantity" and r["relation_or_quantity"] == "distance"
                                       for r in unknown)
    assert summary["latency_ms"]["all"]["n"] == len(records)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| left_of |" in md and "unicorn" in md
    assert f"| | external | {NAME} |" in md and "relation confidence ECE" in md
    assert (tmp_path / "out" / "plots" / "external_reliability.png").stat().st_size > 1000
    assert (tmp_path / "out" / "plots" / "external_confusion.png").stat().st_size > 1000
    assert (tmp_path / "out" / "frames" / "frame_00.png").stat().st_size > 1000


def test_evaluate_without_ground_truth_is_a_clear_error(tiny_bag, tmp_path):
    bag = tmp_path / "copy"
    shutil.copytree(tiny_bag, bag)
    (bag / "ground_truth.json").unlink()
    with pytest.raises(InputError, match="no ground truth"):
        evaluate(bag, None, tmp_path / "out", progress=False)

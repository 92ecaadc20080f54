"""Report writing on toy records: JSON is standard, Markdown holds the tables, plots and frames exist."""
import json

import numpy as np
import pytest

from spatial_vlm_ros.evaluation.records import FrameStats, QueryRecord
from spatial_vlm_ros.evaluation.report import FrameAnnotation, RunResult, draw_annotation, records_table, write_report
from spatial_vlm_ros.evaluation.scoring import summarize


def _records():
    recs = []
    for i in range(6):
        recs.append(QueryRecord(1.0 + i, "relation", "mug", "left_of", "bowl", truth=i % 2 == 0, predicted=True,
                                success=True, latency_ms=2.0 + i, confidence=0.9))
        recs.append(QueryRecord(1.0 + i, "quantity", "mug", "distance", "bowl", truth=0.3 + 0.1 * i,
                                predicted=0.32 + 0.1 * i, success=True, latency_ms=3.0,
                                subject_range_m=0.8 + 0.1 * i))
    recs.append(QueryRecord(1.0, "quantity", "cup", "height", "", truth=0.1, predicted=None, success=False,
                            message="unknown object 'cup'; candidates: mug_1, bowl_1"))
    return recs


def test_write_report_outputs(tmp_path):
    recs = _records()
    summary = summarize(recs, FrameStats(published=3, processed=3))
    img = np.zeros((120, 160, 3), np.uint8)
    ann = FrameAnnotation(img, boxes=[("mug", (10, 20, 50, 60))], points=[("mug_1", (30.0, 40.0))],
                          lines=["Q: Is the mug left of the bowl?", "A: Yes.", "truth: yes"])
    paths = write_report(tmp_path, [RunResult("external", summary, recs, ["toy"])], annotations=[ann],
                         meta={"bag": "toy"})
    data = json.loads(paths["json"].read_text())          # standard JSON: NaN written as null
    run = data["runs"]["external"]
    assert run["summary"]["relations"]["overall"]["accuracy"] == 0.5
    assert len(run["records"]) == len(recs)
    assert run["failures"]["service_failures"] == {"unknown object 'cup'": 1}
    md = paths["markdown"].read_text()
    assert "| left_of | 6 | 3 | 50.0% |" in md
    assert "| distance | 6 | 0 |" in md
    assert "plots/external_error_vs_distance.png" in md and "frames/frame_00.png" in md
    # uncertainty: reliability table (6 facts at confidence 0.9, 3 right), coverage column, diagram
    assert "| [0.9, 1.0] | 6 | 0.900 | 0.500 | -0.400 |" in md
    assert run["summary"]["relations"]["overall"]["calibration"]["ece"] == pytest.approx(0.4)
    assert "relation confidence ECE (10 bins) | 0.400 |" in md
    for key in ("external_error", "external_confusion", "external_reliability", "frame_0"):
        assert paths[key].stat().st_size > 1000


def test_draw_annotation_adds_caption_strip():
    img = np.zeros((100, 200, 3), np.uint8)
    out = draw_annotation(FrameAnnotation(img, boxes=[("a", (5, 5, 40, 40))], lines=["q", "a"]))
    assert out.shape[1] == 200 and out.shape[0] > 100
    assert out[5, 20].any()        # box edge drawn


def test_records_table_shows_prediction_and_truth():
    lines = records_table(_records())
    assert any("left_of" in line and "yes" in line for line in lines)
    assert any("height(cup)" in line and "failed" in line for line in lines)


def test_a_value_that_prints_as_its_threshold_gets_more_digits():
    from spatial_vlm_ros.evaluation.report import criterion_text

    wrong = {"metric": "relation_wrong_at_099", "threshold": 0.005}
    assert criterion_text({**wrong, "value": 0.0053}, "value") == "0.53%"        # fails: must not read 0.5%
    assert criterion_text({**wrong, "value": 0.005}, "value") == "0.5%"          # exactly the threshold
    assert criterion_text({**wrong, "value": 0.0031}, "value") == "0.3%"
    ece = {"metric": "relation_ece", "threshold": 0.01}
    assert criterion_text({**ece, "value": 0.0102}, "value") == "0.0102"
    assert criterion_text({**ece, "value": 0.008}, "value") == "0.008"
    assert criterion_text(ece, "threshold") == "0.010"

"""The dataset on disk: schema, columns and dtypes, manifest, atomic writes, bad input (empty bag, frames without
objects, a corrupt image, an existing output) -> one clear ``InputError``, and the CLI's one-line errors."""
import dataclasses
import json

import numpy as np
import pytest

from spatial_vlm_ros.bag import writer as bag_writer
from spatial_vlm_ros.cli import main
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.sim import analytic
from spatial_vlm_ros.sim.dataset import Frame, SceneRecord, depth_to_mm
from spatial_vlm_ros.synthesis.local import synthesize_to_disk
from spatial_vlm_ros.synthesis.schema import COLUMNS, features
from spatial_vlm_ros.synthesis.writer import read_manifest

datasets = pytest.importorskip("datasets")
OPTS = {"width": 96, "height": 72}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn") / "ds"
    manifest = synthesize_to_disk("analytic", 3, 11, out, **OPTS)
    return out, manifest


def _leftovers(parent, name):
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_schema_columns_and_dtypes(written):
    out, manifest = written
    ds = datasets.load_from_disk(str(out))
    assert list(ds.column_names) == list(COLUMNS)
    assert ds.features == features()
    for name, kind in COLUMNS.items():
        if kind in ("string", "float64", "int64"):
            assert ds.features[name].dtype == kind, name
    row = ds[0]
    assert row["image"].size == (96, 72) and row["image"].mode == "RGB"
    assert isinstance(row["objects"], list) and isinstance(row["labels"], list)
    assert row["source"] == "sim:analytic:seed=11" and row["seed"] == 11
    assert ds["sample_id"] == sorted(ds["sample_id"]) and len(set(ds["sample_id"])) == len(ds)
    metric = ds.filter(lambda r: r["kind"] == "metric")
    assert np.all(np.isfinite(metric["value_m"])) and all(a.endswith(("centimeters", "centimeter", "meters",
                                                                    "meter")) for a in metric["answer"])
    other = ds.filter(lambda r: r["kind"] != "metric")
    assert np.all(np.isnan(other["value_m"])) and np.all(np.asarray(other["confidence"]) >= 0.95)
    parquet = datasets.load_dataset("parquet", data_files=str(out / "parquet" / "*.parquet"), split="train",
                                    cache_dir=str(out.parent / "hf_cache"))
    assert parquet.features == features() and parquet["sample_id"] == ds["sample_id"]


def test_manifest_counts(written):
    out, manifest = written
    assert read_manifest(out) == json.loads(json.dumps(manifest, default=str))
    assert manifest["rows"] == sum(manifest["kinds"].values()) == sum(manifest["templates"].values())
    assert manifest["frames"] == 3 and manifest["frames_skipped"] == 0 and manifest["seed"] == 11
    assert manifest["sources"] == ["sim:analytic:seed=11"] and manifest["package_version"]
    assert set(manifest["kinds"]) == {"yes_no", "choice", "metric", "describe"}
    agreement = manifest["answer_matches_truth"]
    assert agreement["yes_no"]["rows"] > 0 and 0.5 < agreement["yes_no"]["fraction"] <= 1.0


def test_existing_output_and_interrupted_write_leave_nothing(written, tmp_path, monkeypatch):
    out, _ = written
    with pytest.raises(InputError, match="exists"):
        synthesize_to_disk("analytic", 1, 0, out, **OPTS)

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(datasets.Dataset, "save_to_disk", broken)
    with pytest.raises(OSError, match="disk full"):
        synthesize_to_disk("analytic", 1, 0, tmp_path / "new", **OPTS)
    assert not (tmp_path / "new").exists() and not _leftovers(tmp_path, "new")


def _bag(tmp_path, frames_objects, name="bag"):
    """A bag of analytic frames (each a list of ``sim.analytic`` objects) with masks and no ground truth."""
    camera = analytic.default_camera(96, 72)
    info = {"width": 96, "height": 72, "k": camera.K.ravel().tolist(), "d": [0.0] * 5,
            "distortion_model": "plumb_bob", "frame_id": "cam"}
    frames = []
    for i, objects in enumerate(frames_objects):
        f = analytic.render(objects, camera=camera)
        frames.append(Frame(10**9 * (i + 1), f.rgb, depth_to_mm(f.depth), f.mask, f.ids, f.labels, info))
    return bag_writer.write_bag([SceneRecord("s", frames)] if frames else [], tmp_path / name, detections=False)


def test_bag_source_with_masks(tmp_path):
    objects = [analytic.BoxObject("red box", (-0.12, 0.0), (0.08, 0.08, 0.08), color=(210, 35, 35)),
               analytic.CylinderObject("blue cylinder", (0.12, 0.0), 0.04, 0.1, color=(40, 70, 210))]
    bag = _bag(tmp_path, [objects, objects])
    manifest = synthesize_to_disk(str(bag), None, 0, tmp_path / "out")
    assert manifest["frames"] == 2 and manifest["sources"] == [str(bag)]
    ds = datasets.load_from_disk(str(tmp_path / "out"))
    assert set(ds["truth_answer"]) == {""} and set(ds["stamp_ns"]) == {10**9, 2 * 10**9}


def test_empty_bag(tmp_path):
    bag = _bag(tmp_path, [])
    with pytest.raises(InputError, match="no color frames"):
        synthesize_to_disk(str(bag), None, 0, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path, "out")


def test_frames_without_objects(tmp_path):
    bag = _bag(tmp_path, [[], []])
    with pytest.raises(InputError, match=r"no QA rows .* 2 frames .*no objects"):
        synthesize_to_disk(str(bag), None, 0, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path, "out")


def test_corrupt_image(tmp_path, monkeypatch):
    original = bag_writer.image_msg

    def truncated(pixels, encoding, stamp_ns, frame_id):
        msg = original(pixels, encoding, stamp_ns, frame_id)
        return dataclasses.replace(msg, data=msg.data[:100]) if encoding == "rgb8" else msg
    monkeypatch.setattr(bag_writer, "image_msg", truncated)
    objects = [analytic.BoxObject("red box", (0.0, 0.0), (0.08, 0.08, 0.08))]
    bag = _bag(tmp_path, [objects])
    with pytest.raises(InputError, match=r"bag .*do not fit"):
        synthesize_to_disk(str(bag), None, 0, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not _leftovers(tmp_path, "out")


@pytest.mark.parametrize("args, message", [
    (["--source", "analytic", "--scenes", "0"], "--scenes >= 1"),
    (["--source", "/no/such/bag", "--scenes", "1"], "neither"),
    (["--source", "analytic", "--scenes", "1", "--workers", "0"], "workers must be"),
    (["--source", "analytic", "--scenes", "1", "--address", "127.0.0.1:1"], "--address needs --engine ray"),
    (["--source", "analytic", "--scenes", "1", "--width", "8"], "16-4096"),
    (["--source", "analytic", "--scenes", "1", "--min-confidence", "0.2"], "min_confidence"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    assert main(["synthesize", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spatial_vlm synthesize: ") and message in err
    assert "Traceback" not in err and not (tmp_path / "out").exists() and not _leftovers(tmp_path, "out")


def test_cli_summary_and_existing_output(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["synthesize", "--source", "analytic", "--scenes", "1", "--out", str(out), "--width", "96",
                 "--height", "72", "--kinds", "describe", "metric"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("synthesized ") and " QA rows from 1 frames (0 skipped) in " in line
    assert set(datasets.load_from_disk(str(out))["kind"]) <= {"describe", "metric"}
    assert main(["synthesize", "--source", "analytic", "--scenes", "1", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err

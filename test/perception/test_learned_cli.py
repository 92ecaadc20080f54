"""The learned-parts CLI end to end: ``make-tiny-models`` then ``export-onnx --part ... --check`` (PyTorch vs
onnxruntime on one input), the detector's ONNX backend against PyTorch, and ``fetch-models``' argument
handling (it is never run against the network here). Tiny random-weight models: plumbing, never accuracy."""
import re

import numpy as np
import pytest

from spatial_vlm_ros import cli
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.perception import learned_cli
from spatial_vlm_ros.perception.open_vocab import META_FILE, ONNX_FILE, OpenVocabParams, ZeroShotBoxDetector
from spatial_vlm_ros.sim import analytic


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_models")
    assert cli.main(["make-tiny-models", "--out", str(root), "--parts", "detector", "segmenter"]) == 0
    return root


@pytest.fixture(scope="session")
def detector_onnx(tiny_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("detector_onnx")
    code = cli.main(["export-onnx", "--part", "detector", "--model", str(tiny_root / "detector"), "--out",
                     str(out), "--check"])
    return code, out


def _max_diff(text):
    return float(re.search(r"max abs difference PyTorch vs onnxruntime = (\S+)", text).group(1))


def test_make_tiny_models_writes_loadable_directories(tiny_root):
    for part in ("detector", "segmenter"):
        assert (tiny_root / part / "config.json").is_file()
        assert (tiny_root / part / "model.safetensors").is_file()
        assert not list((tiny_root / part).glob("*.bin"))
    assert (tiny_root / "segmenter" / "preprocessor_config.json").is_file()


def test_export_detector_with_check_and_run_the_onnx_backend(tiny_root, detector_onnx, capsys):
    code, out = detector_onnx
    assert code == 0 and (out / ONNX_FILE).is_file() and (out / META_FILE).is_file()
    frame = analytic.render(analytic.random_tabletop(3, seed=5), camera=analytic.default_camera(640, 480),
                            noise=DepthNoiseModel(), seed=0)
    kw = dict(model=str(tiny_root / "detector"), device="cpu", classes=("cup", "plate", "big box"),
              score_threshold=0.0, text_threshold=0.0)
    ref = ZeroShotBoxDetector(OpenVocabParams(**kw))
    onx = ZeroShotBoxDetector(OpenVocabParams(**kw, backend="onnx", onnx_dir=str(out)))
    assert onx.provider == "CPUExecutionProvider"
    a, b = ref.detect_boxes(frame.rgb), onx.detect_boxes(frame.rgb)    # other classes than at export
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        assert x.label == y.label and abs(x.score - y.score) < 1e-4
        np.testing.assert_allclose(x.corners(), y.corners(), atol=1e-2)
    # a frame of another size than the graph's fixed image input is a clear error
    with pytest.raises(Exception, match="exported for pixel_values"):
        onx.detect_boxes(frame.rgb[:, :400])


def test_export_segmenter_check_passes_and_fails_above_tolerance(tiny_root, tmp_path, capsys):
    model = str(tiny_root / "segmenter")
    assert cli.main(["export-onnx", "--part", "segmenter", "--model", model, "--out", str(tmp_path / "a"),
                     "--check"]) == 0
    assert _max_diff(capsys.readouterr().out) < learned_cli.TOLERANCE[False]
    assert cli.main(["export-onnx", "--part", "segmenter", "--model", model, "--out", str(tmp_path / "b"),
                     "--check", "--tolerance", "-1"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_export_of_a_missing_model_names_fetch_models(tmp_path, capsys):
    assert cli.main(["export-onnx", "--part", "segmenter", "--model", str(tmp_path / "none"), "--out",
                     str(tmp_path / "o")]) == 2
    assert "fetch-models" in capsys.readouterr().out


def test_export_onnx_without_part_still_exports_vlms(monkeypatch):
    seen = []
    import spatial_vlm_ros.vlm.onnx_export as vlm_export
    monkeypatch.setattr(vlm_export, "main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["export-onnx", "--model", "m", "--output", "o"]) == 0
    assert seen == [["--model", "m", "--output", "o"]]


def test_fetch_models_arguments_and_file_patterns(monkeypatch, capsys):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, allow_patterns, cache_dir=None: calls.append((repo, allow_patterns)) or "/x")
    assert cli.main(["fetch-models", "--part", "segmenter", "--model", "org/sam"]) == 0
    assert calls == [("org/sam", list(learned_cli.FETCH_PATTERNS))]
    assert not any(p.endswith((".bin", ".pt", ".pth", ".ckpt")) or p == "*" for p in learned_cli.FETCH_PATTERNS)
    calls.clear()
    assert cli.main(["fetch-models", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert calls == [] and "IDEA-Research/grounding-dino-tiny" in out and "facebook/sam2.1-hiera-tiny" in out
    assert cli.main(["fetch-models", "--model", "org/x"]) == 2          # --model needs --part
    with pytest.raises(SystemExit):
        cli.main(["fetch-models", "--part", "nose"])

"""``detector: open_vocab`` on a tiny randomly initialised Grounding DINO built in the test (and a tiny SAM 2).

The models have random weights: these tests check plumbing (loading, prompting, post-processing, NMS,
masks, errors), never detection accuracy. The post-processing and NMS are also tested on hand-made scores.
"""
import json

import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.perception import open_vocab, sam2_segmenter
from spatial_vlm_ros.perception.base import Instance
from spatial_vlm_ros.perception.open_vocab import (
    OpenVocabDetector,
    OpenVocabParams,
    ZeroShotBoxDetector,
    clean_classes,
    select_detections,
)
from spatial_vlm_ros.runtime.loading import MissingModelError
from spatial_vlm_ros.sim import analytic

CAMERA = analytic.default_camera(320, 240)


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("open_vocab")
    return open_vocab.save_tiny_model(root / "detector"), sam2_segmenter.save_tiny_model(root / "segmenter")


@pytest.fixture(scope="session")
def scene():
    return analytic.render(analytic.random_tabletop(4, seed=2), camera=CAMERA, noise=DepthNoiseModel(), seed=0)


def _params(model, **kw):
    base = dict(model=str(model), device="cpu", classes=("mug", "red bowl"), score_threshold=0.0,
                text_threshold=0.0)
    base.update(kw)
    return OpenVocabParams(**base)


def test_tiny_detector_gives_boxes_of_the_classes_inside_the_image(tiny_dirs, scene):
    det = ZeroShotBoxDetector(_params(tiny_dirs[0], max_detections=7))
    assert det.family == "grounding-dino"
    assert "Pil" in type(det.processor.image_processor).__name__      # no torchvision needed
    boxes = det.detect_boxes(scene.rgb)
    assert 0 < len(boxes) <= 7 and all(isinstance(b, Detection2D) for b in boxes)
    h, w = scene.rgb.shape[:2]
    for b in boxes:
        u0, v0, u1, v1 = b.corners()
        assert b.label in ("mug", "red bowl") and 0.0 <= b.score <= 1.0
        assert 0 <= u0 < u1 <= w and 0 <= v0 < v1 <= h
    assert [b.score for b in boxes] == sorted((b.score for b in boxes), reverse=True)
    # thresholds act: nothing passes a score threshold of 1 (sigmoid < 1 in float64 for these logits)
    strict = ZeroShotBoxDetector(_params(tiny_dirs[0], score_threshold=1.0))
    assert all(b.score >= 1.0 for b in strict.detect_boxes(scene.rgb))


def test_token_spans_cover_each_phrase(tiny_dirs, scene):
    det = ZeroShotBoxDetector(_params(tiny_dirs[0]))
    _, meta = det.encode(scene.rgb, ("mug", "red bowl"))
    # character-level tokenizer: 'mug' -> 3 tokens, 'red bowl' -> 7 tokens, after [CLS]
    assert meta["spans"] == [[1, 2, 3], [5, 6, 7, 8, 9, 10, 11]]


def test_set_classes_validates_and_an_empty_list_is_refused(tiny_dirs, scene):
    det = OpenVocabDetector(_params(tiny_dirs[0], classes=(), segmenter="sam2", sam_model=str(tiny_dirs[1])))
    with pytest.raises(InputError, match="set_classes"):
        det.detect(scene.rgb, scene.depth, scene.camera, scene.gravity)
    with pytest.raises(InputError, match="empty"):
        det.set_classes([])
    with pytest.raises(InputError, match="blank"):
        det.set_classes(["mug", "  "])
    assert det.set_classes([" mug ", "red bowl.", "mug"]) == ("mug", "red bowl")
    with pytest.raises(InputError):
        det.set_classes([""])
    assert det.classes == ("mug", "red bowl")       # a refused update keeps the previous classes
    assert clean_classes("cup") == ("cup",)


def test_open_vocab_with_sam2_masks_end_to_end(tiny_dirs, scene):
    det = OpenVocabDetector(_params(tiny_dirs[0], max_detections=5, segmenter="sam2",
                                    sam_model=str(tiny_dirs[1])))
    assert isinstance(det.segmenter, sam2_segmenter.Sam2Segmenter)
    instances = det.detect(scene.rgb, scene.depth, scene.camera, scene.gravity)
    assert len(det.last_boxes) > 0
    for inst in instances:
        assert isinstance(inst, Instance) and inst.mask.shape == scene.rgb.shape[:2] and inst.mask.any()
    with pytest.raises(InputError, match="color"):
        det.detect(None, scene.depth, scene.camera, scene.gravity)


def test_depth_segmenter_is_the_default_without_a_sam_model(tiny_dirs, scene):
    from spatial_vlm_ros.perception.box_segmenter import DepthBoxSegmenter

    det = OpenVocabDetector(_params(tiny_dirs[0], max_detections=5))
    assert OpenVocabParams().resolved_segmenter == "depth"
    assert isinstance(det.segmenter, DepthBoxSegmenter)
    instances = det.detect(scene.rgb, scene.depth, scene.camera, scene.gravity)
    assert all(inst.mask.shape == scene.rgb.shape[:2] for inst in instances)


def test_pipeline_and_parameters_build_the_open_vocab_detector(tiny_dirs):
    from spatial_vlm_ros.pipeline import PipelineConfig, make_detector
    from spatial_vlm_ros.ros.parameters import pipeline_config, validate_values

    values = validate_values({"detector": "open_vocab", "open_vocab.model": str(tiny_dirs[0]),
                              "open_vocab.device": "cpu"})
    config = pipeline_config(values)
    assert config.open_vocab.classes == ()          # the [""] default means none
    config = pipeline_config({**values, "open_vocab.classes": ["mug", "bowl"]})
    assert config.open_vocab.classes == ("mug", "bowl")
    det = make_detector(config)
    assert isinstance(det, OpenVocabDetector) and det.classes == ("mug", "bowl")
    assert isinstance(PipelineConfig().open_vocab, OpenVocabParams)


def test_select_detections_drops_nan_negative_scores_and_bad_boxes():
    classes = ("mug", "bowl")
    scores = np.array([[0.9, 0.1], [np.nan, 0.8], [-0.2, 0.5], [0.3, 1.5], [0.7, 0.2], [0.1, 0.6], [0.2, 0.4]])
    boxes = np.array([[10, 10, 50, 50], [0, 0, 20, 20], [0, 0, 20, 20], [0, 0, 20, 20],
                      [12, 12, 52, 52],        # overlaps row 0, same class: suppressed by NMS
                      [12, 12, 52, 52],        # overlaps row 0, other class: kept
                      [np.inf, 0, 5, 5]], float)
    dets, warnings = select_detections(scores, boxes, classes, 100, 80, 0.25, 0.5, 10)
    assert [(d.label, round(d.score, 2)) for d in dets] == [("mug", 0.9), ("bowl", 0.6)]
    assert any("3 detections with NaN or out-of-range scores" in w for w in warnings)
    assert any("non-finite boxes" in w for w in warnings)
    # clipping to the image, empty boxes dropped, max_detections
    dets, _ = select_detections(np.array([[0.9], [0.8], [0.7]]), np.array([[-5, -5, 30, 200], [90, 10, 120, 20],
                                [40, 40, 40.5, 60]], float), ("box",), 100, 80, 0.0, 0.5, 1)
    assert len(dets) == 1 and dets[0].corners() == (0.0, 0.0, 30.0, 80.0)
    assert select_detections(np.zeros((0, 2)), np.zeros((0, 4)), classes, 10, 10, 0.0, 0.5, 5)[0] == []


def test_bad_parameters_and_unsupported_families_are_clear_errors(tiny_dirs, tmp_path):
    with pytest.raises(InputError):
        OpenVocabParams(backend="tensorflow")
    with pytest.raises(InputError):
        OpenVocabParams(score_threshold=1.5)
    with pytest.raises(InputError, match="onnx_dir"):
        ZeroShotBoxDetector(_params(tiny_dirs[0], backend="onnx"))
    with pytest.raises(InputError, match="export-onnx"):
        ZeroShotBoxDetector(_params(tiny_dirs[0], backend="onnx", onnx_dir=str(tmp_path)))
    det = ZeroShotBoxDetector(_params(tiny_dirs[0]))
    with pytest.raises(InputError, match="uint8"):
        det.detect_boxes(np.zeros((20, 20), np.uint8))


def test_missing_or_corrupt_model_directory_names_the_problem(tiny_dirs, tmp_path):
    with pytest.raises(MissingModelError, match="fetch-models"):
        ZeroShotBoxDetector(_params(tmp_path / "nope"))
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes(b"")
    with pytest.raises(MissingModelError, match="config.json"):
        ZeroShotBoxDetector(_params(no_config))
    pickle_only = tmp_path / "pickle_only"
    pickle_only.mkdir()
    (pickle_only / "config.json").write_text((tiny_dirs[0] / "config.json").read_text())
    (pickle_only / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(MissingModelError, match="pickle"):
        ZeroShotBoxDetector(_params(pickle_only))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text(json.dumps({"model_type": "grounding-dino"})[:-3])
    (corrupt / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(InputError):
        ZeroShotBoxDetector(_params(corrupt))


def test_owlv2_boxes_and_onnx_parity(tmp_path, scene):
    """OWLv2's path (one query per class, boxes normalised to the padded square image) on a tiny random
    OWLv2, PyTorch vs its ONNX export (plumbing only)."""
    model = open_vocab.save_tiny_owlv2(tmp_path / "owl")
    kw = dict(model=str(model), device="cpu", classes=("mug", "red bowl", "box"), score_threshold=0.0)
    det = ZeroShotBoxDetector(OpenVocabParams(**kw))
    assert det.family == "owlv2"
    boxes = det.detect_boxes(scene.rgb)
    assert boxes and all(b.label in kw["classes"] for b in boxes)
    logits, pred = det.forward(det.encode(scene.rgb, kw["classes"])[0])
    scores, xyxy, _ = det.scores_and_boxes(logits, pred, {}, 320, 240, 3)
    assert scores.shape == (16, 3)
    np.testing.assert_allclose(xyxy[:, 2] - xyxy[:, 0], pred[:, 2] * 320, rtol=1e-5)   # square side = width
    onnx_dir = open_vocab.export_onnx(str(model), tmp_path / "owl_onnx", image_hw=(240, 320))
    assert open_vocab.check_onnx(str(model), onnx_dir) < 1e-3
    onx = ZeroShotBoxDetector(OpenVocabParams(**{**kw, "classes": ("cup", "plate")}, backend="onnx",
                                              onnx_dir=str(onnx_dir)))
    det.set_classes(["cup", "plate"])                # another class count than at export (dynamic axis)
    a, b = det.detect_boxes(scene.rgb), onx.detect_boxes(scene.rgb)
    assert [x.label for x in a] == [y.label for y in b]
    np.testing.assert_allclose([x.score for x in a], [y.score for y in b], atol=1e-4)


def test_frame_pipeline_runs_open_vocab_with_depth_masks(tiny_dirs, scene):
    """The core pipeline with ``detector: open_vocab`` (tiny random box model, depth masks inside its boxes):
    frames in, lifted objects with the prompted labels out. (Random SAM 2 masks would mostly cover the table,
    which lifting rightly rejects.)"""
    from spatial_vlm_ros.core.frame import Frame
    from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig

    config = PipelineConfig(detector="open_vocab", open_vocab=_params(
        tiny_dirs[0], max_detections=20, score_threshold=0.0, segmenter="depth"))
    pipeline = FramePipeline(config)
    frame = Frame(rgb=scene.rgb, depth=scene.depth.astype(np.float32), depth_encoding="32FC1",
                  camera=scene.camera, stamp=1.0)
    result = pipeline.process(frame)
    assert 0 < len(result.observations) <= 20
    assert {o.label for o in result.objects} <= {"mug", "red bowl"}
    pipeline.detector.set_classes(["cup"])
    assert {o.label for o in pipeline.process(Frame(**{**frame.__dict__, "stamp": 2.0})).observations} <= {"cup"}

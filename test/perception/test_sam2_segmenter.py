"""SAM 2 box-prompted masks on a tiny randomly initialised ``Sam2Model`` built in the test: PyTorch and
onnxruntime paths, their parity, the numpy preprocessing, bad input. Random weights: plumbing, never mask
quality."""
import json

import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D
from spatial_vlm_ros.perception import sam2_segmenter as sam
from spatial_vlm_ros.perception.sam2_segmenter import Sam2Params, Sam2Segmenter

RGB = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
BOXES = [Detection2D.from_corners("mug", 0.9, 5, 4, 40, 50), Detection2D.from_corners("bowl", 0.7, 30, 20, 78, 58)]


@pytest.fixture(scope="session")
def tiny_sam(tmp_path_factory):
    root = tmp_path_factory.mktemp("sam2")
    model = sam.save_tiny_model(root / "segmenter")
    return model, sam.export_onnx(model, root / "onnx")


def test_torch_masks_stay_in_their_boxes_and_outside_boxes_are_skipped(tiny_sam):
    seg = Sam2Segmenter(Sam2Params(model=str(tiny_sam[0]), device="cpu", min_pixels=1))
    outside = Detection2D.from_corners("ghost", 0.5, 200, 200, 260, 260)
    instances = seg.segment(RGB, None, None, None, BOXES + [outside])
    assert any("outside" in w for w in seg.warnings)
    assert [i.label for i in instances] == [b.label for b in BOXES][:len(instances)]
    for inst, box in zip(instances, BOXES):
        v, u = np.nonzero(inst.mask)
        u0, v0, u1, v1 = box.corners()
        assert inst.mask.shape == RGB.shape[:2]
        assert u.min() >= np.floor(u0) and u.max() < np.ceil(u1) and v.min() >= np.floor(v0) and v.max() < np.ceil(v1)
    assert seg.segment(RGB, None, None, None, []) == []
    with pytest.raises(InputError, match="color"):
        seg.segment(None, None, None, None, BOXES)


def test_onnx_matches_pytorch(tiny_sam):
    model, onnx_dir = tiny_sam
    assert (onnx_dir / sam.ENCODER_FILE).is_file() and (onnx_dir / sam.DECODER_FILE).is_file()
    assert sam.check_onnx(str(model), onnx_dir) < sam.ONNX_TOLERANCE
    ref = Sam2Segmenter(Sam2Params(model=str(model), device="cpu", min_pixels=1))
    onx = Sam2Segmenter(Sam2Params(model=str(model), backend="onnx", onnx_dir=str(onnx_dir), device="cpu",
                                   min_pixels=1))
    assert onx.provider == "CPUExecutionProvider"
    boxes = BOXES * 3                                 # a box count other than the export's (dynamic axis)
    np.testing.assert_allclose(onx.mask_logits(RGB, boxes), ref.mask_logits(RGB, boxes), atol=1e-3)
    a = ref.segment(RGB, None, None, None, BOXES)
    b = onx.segment(RGB, None, None, None, BOXES)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert np.mean(x.mask == y.mask) > 0.99


def test_preprocessing_resizes_and_normalises_like_the_processor_config():
    mean, std = np.array(sam.IMAGENET_MEAN), np.array(sam.IMAGENET_STD)
    grey = np.full((30, 50, 3), 128, np.uint8)
    px = sam.preprocess(grey, 64)
    assert px.shape == (1, 3, 64, 64) and px.dtype == np.float32
    np.testing.assert_allclose(px[0, :, 10, 10], (128 / 255 - mean) / std, rtol=1e-5)
    with pytest.raises(InputError):
        sam.preprocess(np.zeros((10, 10), np.uint8), 64)
    boxes = sam.boxes_to_input([Detection2D.from_corners("a", 1, -10, 5, 25, 100)], 50, 30, 64)
    np.testing.assert_allclose(boxes[0, 0], [0, 5 * 64 / 30, 25 * 64 / 50, 64])


def test_onnx_backend_errors_are_clear(tiny_sam, tmp_path):
    with pytest.raises(InputError, match="onnx_dir"):
        Sam2Segmenter(Sam2Params(backend="onnx"))
    with pytest.raises(InputError, match="export-onnx"):
        Sam2Segmenter(Sam2Params(backend="onnx", onnx_dir=str(tmp_path)))
    with pytest.raises(InputError):
        Sam2Segmenter(Sam2Params(backend="jax"))
    meta = json.loads((tiny_sam[1] / sam.META_FILE).read_text())
    assert meta["image_size"] == 64 and meta["part"] == "segmenter"

"""Monocular depth model (perception.mono_depth) on a tiny RANDOMLY INITIALISED Depth Anything built from a
transformers config: these tests check plumbing (loading, pre-processing, shapes, torch vs ONNX parity, the
pipeline's model/fuse paths), never accuracy; the tiny model's depth means nothing."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.core.depth_fusion import FusionParams
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Frame, Segmentation
from spatial_vlm_ros.core.lifting import LiftingParams
from spatial_vlm_ros.perception import mono_depth as M
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig
from spatial_vlm_ros.runtime.loading import MissingModelError
from spatial_vlm_ros.sim import analytic

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return M.save_tiny_model(tmp_path_factory.mktemp("models") / "depth")


@pytest.fixture(scope="module")
def tiny_onnx(tiny, tmp_path_factory):
    return M.export_onnx(str(tiny), tmp_path_factory.mktemp("onnx"), image_size=(120, 160))


def _smooth_image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h),
                      interpolation=cv2.INTER_LINEAR)


def test_tiny_model_predicts_finite_positive_depth_of_the_image_size(tiny):
    model = M.MonoDepthModel(M.DepthModelParams(model=str(tiny), device="cpu"))
    assert model.metric and model.provider == "torch:cpu"
    assert (model.prep.height, model.prep.multiple) == (56, 14)          # from the saved processor config
    for h, w in [(120, 160), (97, 203)]:
        depth = model.predict(_smooth_image(h, w))
        assert depth.shape == (h, w) and depth.dtype == np.float32
        assert np.isfinite(depth).all() and (depth > 0).all() and (depth < 20.0).all()   # metric head: 0..20 m
    with pytest.raises(InputError, match="HxWx3 uint8"):
        model.predict(np.zeros((10, 10), np.uint8))


def test_preprocessing_matches_the_transformers_image_processor():
    """The numpy/OpenCV path against transformers' own (PIL-backend) DPT processor at 518 px."""
    img = _smooth_image(480, 640)
    ref = M.processor_for(518)(images=img, return_tensors="np")["pixel_values"]
    ours = M.Preprocessing()(img)
    assert ours.shape == ref.shape == (1, 3, 518, 686)
    assert np.mean(np.abs(ours - ref)) < 0.01 and np.max(np.abs(ours - ref)) < 0.2   # bicubic kernels differ
    for h, w in [(120, 160), (97, 203), (720, 1280)]:                    # the processor's resize rule
        shape = M.processor_for(364)(images=_smooth_image(h, w), return_tensors="np")["pixel_values"].shape
        assert M.Preprocessing(height=364, width=364).network_size(h, w) == shape[2:]


def test_real_size_config_has_the_published_parameter_count():
    import torch
    from transformers import AutoModelForDepthEstimation

    with torch.device("meta"):
        net = AutoModelForDepthEstimation.from_config(M.real_size_config())
    n = sum(p.numel() for p in net.parameters())
    assert 24.7e6 < n < 24.9e6                                           # Depth Anything V2 Small: 24.8 M


def test_onnx_export_matches_pytorch(tiny, tiny_onnx):
    assert M.check_onnx(str(tiny), tiny_onnx) < 1e-3                     # metres, depths around 10 m
    onnx = M.MonoDepthModel(M.DepthModelParams(model=str(tiny), backend="onnx", onnx_dir=str(tiny_onnx),
                                               device="cpu"))
    assert onnx.provider == "CPUExecutionProvider" and onnx.metric
    depth = onnx.predict(_smooth_image(120, 160))
    assert depth.shape == (120, 160) and np.isfinite(depth).all() and (depth > 0).all()
    with pytest.raises(InputError, match="exported for a 70x56 network input.*re-export"):
        onnx.predict(_smooth_image(240, 240))


def test_loading_errors_name_the_model_and_the_fix(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingModelError, match="does not exist; fetch it with `spatial_vlm fetch-models --part depth"):
        M.MonoDepthModel(M.DepthModelParams(model=str(tmp_path / "nope"), device="cpu"))
    (tmp_path / "noconfig").mkdir()
    with pytest.raises(MissingModelError, match="no config.json"):
        M.MonoDepthModel(M.DepthModelParams(model=str(tmp_path / "noconfig"), device="cpu"))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tiny / "config.json").read_text())
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(MissingModelError, match=r"no \*.safetensors weights \(found pickle checkpoints"):
        M.MonoDepthModel(M.DepthModelParams(model=str(pickled), device="cpu"))
    with pytest.raises(MissingModelError, match="not in the local Hugging Face cache.*spatial_vlm fetch-models"):
        M.MonoDepthModel(M.DepthModelParams(model="depth-anything/not-a-cached-model", device="cpu"))
    with pytest.raises(InputError, match="needs depth_model.onnx_dir"):
        M.MonoDepthModel(M.DepthModelParams(model=str(tiny), backend="onnx"))
    with pytest.raises(MissingModelError, match="export-onnx --part depth"):
        M.MonoDepthModel(M.DepthModelParams(model=str(tiny), backend="onnx", onnx_dir=str(tmp_path)))
    with pytest.raises(InputError, match="backend must be one of torch, onnx"):
        M.DepthModelParams(backend="tensorflow").validate()


# ---------------------------------------------------------------------------- pipeline (plumbing)
SCENE = analytic.render([analytic.BoxObject("box", (0.0, 0.0), (0.12, 0.10, 0.15), color=(210, 35, 35))],
                        camera=analytic.default_camera(160, 120))


def _frame(depth):
    return Frame(SCENE.rgb, depth, "16UC1", SCENE.camera, 1.0,
                 segmentation=Segmentation(SCENE.mask, SCENE.ids, SCENE.labels, [1.0]))


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_pipeline_runs_the_tiny_model_for_rgb_only_frames(tiny, tiny_onnx, backend):
    params = M.DepthModelParams(model=str(tiny), device="cpu", backend=backend,
                                onnx_dir=str(tiny_onnx) if backend == "onnx" else "")
    config = PipelineConfig(depth_source="model", depth_model=params, lifting=LiftingParams(max_range_m=25.0))
    pipeline = FramePipeline(config)
    result = pipeline.process(_frame(None))
    assert isinstance(pipeline.depth_predictor, M.MonoDepthModel)
    assert result.timings_ms["depth_model"] > 0 and len(result.observations) == 1     # lifted at ~10 m


def test_pipeline_fuses_the_tiny_model_with_sensor_depth(tiny):
    sensor = SCENE.depth.copy()
    sensor[:, :40] = np.nan                                              # a band without sensor depth
    lenient = FusionParams(inlier_threshold=1.0, min_inlier_fraction=0.0)   # random model: anything goes
    config = PipelineConfig(depth_source="fuse", depth_fusion=lenient,
                            depth_model=M.DepthModelParams(model=str(tiny), device="cpu"))
    pipeline = FramePipeline(config)
    result = pipeline.process(_frame(encode_depth_mm(sensor)))
    fit = pipeline.last_depth_fit
    assert fit.n_valid == np.count_nonzero(np.isfinite(sensor)) and fit.scale > 0
    assert len(result.observations) == 1 and "depth_model" in result.timings_ms


def test_sensor_depth_never_imports_torch():
    code = ("import sys\nfrom spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig\n"
            "import spatial_vlm_ros.ros.parameters\nFramePipeline(PipelineConfig())\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)

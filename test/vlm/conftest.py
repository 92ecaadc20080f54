"""Fixtures of the VLM tests: tiny random LLaVA saved to disk, its ONNX export, engines. No downloads."""
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory):
    from spatial_vlm_ros.vlm.tiny_models import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny_llava"), "llava", seed=0)


@pytest.fixture(scope="session")
def torch_engine(tiny_llava_dir):
    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    return TransformersEngine(str(tiny_llava_dir))


@pytest.fixture(scope="session")
def onnx_dir(tiny_llava_dir, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from spatial_vlm_ros.vlm.onnx_export import ExportRecipe, export_model

    out = tmp_path_factory.mktemp("tiny_llava_onnx")
    return export_model(ExportRecipe(model=str(tiny_llava_dir), output=str(out), optimize=False))


@pytest.fixture(scope="session")
def onnx_engine(onnx_dir):
    from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine

    return OnnxEngine(onnx_dir, device="cpu")


def random_image(seed: int, height: int = 48, width: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def make_image():
    """``make_image(seed, height=48, width=64)`` -> random (H, W, 3) uint8 RGB image."""
    return random_image

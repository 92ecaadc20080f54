"""Serving the compact model: its saved directory exports with the existing ONNX path (family llava) and the
onnxruntime engine answers what PyTorch answers (greedy tokens, log-probabilities, What's Up caption scores).
The model is a tiny compact-architecture one with random weights (a wide initialisation spreads the logits so
that greedy decoding is not decided by rounding); what is checked is the export, not answer quality."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from spatial_vlm_ros.training import compact  # noqa: E402
from spatial_vlm_ros.vlm.engine import GenerationOptions, VLMRequest  # noqa: E402

LOGPROB_ATOL = 1e-4      # as test/vlm/test_vlm_onnx_parity.py


@pytest.fixture(scope="module")
def compact_dirs(tmp_path_factory):
    from spatial_vlm_ros.vlm.onnx_export import ExportRecipe, export_model

    cfg = compact.CompactConfig(image_size=32, patch_size=8, vision_hidden=32, vision_layers=2, vision_heads=2,
                                vision_intermediate=64, hidden=48, layers=2, heads=4, kv_heads=2,
                                intermediate=96, vocab_size=300, max_positions=256, initializer_range=0.2)
    texts = ["Where is the red box relative to the blue cylinder?", "The red box is on the blue cylinder.",
             "How far apart are the red box and the blue cylinder?", "12 centimeters"] * 3
    model, processor = compact.build_compact(cfg, compact.train_tokenizer(texts, cfg.vocab_size), seed=1)
    model_dir = compact.save_compact(model.eval(), processor, tmp_path_factory.mktemp("compact"))
    onnx_dir = export_model(ExportRecipe(model=str(model_dir), output=str(tmp_path_factory.mktemp("onnx")),
                                         optimize=False))
    return model_dir, onnx_dir


def test_onnx_export_answers_like_pytorch(compact_dirs):
    from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine
    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    model_dir, onnx_dir = compact_dirs
    torch_engine, onnx_engine = TransformersEngine(str(model_dir)), OnnxEngine(onnx_dir, device="cpu")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (36, 48, 3), dtype=np.uint8) for _ in range(2)]
    requests = [VLMRequest("Where is the red box relative to the blue cylinder?", images[0]),
                VLMRequest("How far apart are the red box and the blue cylinder?", images[1])]
    opts = GenerationOptions(max_new_tokens=8, return_logprobs=True)
    ref, got = torch_engine.generate(requests, opts), onnx_engine.generate(requests, opts)
    for r, g in zip(ref, got):
        assert g.token_ids == r.token_ids and g.text == r.text
        np.testing.assert_allclose(g.token_logprobs, r.token_logprobs, atol=LOGPROB_ATOL)
    captions = ["The red box is on the blue cylinder.", "The red box is under the blue cylinder."]
    prompt = "Where is the red box relative to the blue cylinder?"
    np.testing.assert_allclose(onnx_engine.score_captions(images[0], captions, prompt=prompt),
                               torch_engine.score_captions(images[0], captions, prompt=prompt), atol=1e-3)

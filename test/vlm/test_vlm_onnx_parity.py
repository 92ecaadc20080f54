"""ONNX export + onnxruntime runner against PyTorch on the same tiny random LLaVA.

Tolerances (fp32, CPU): logits of valid positions within 1e-4 absolute (measured ~5e-6), identical greedy
tokens, token log-probabilities within 1e-4.
"""
import json

import numpy as np
import pytest
import torch

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm.engine import GenerationOptions, VLMRequest
from spatial_vlm_ros.vlm.interventions import InterventionConfig

LOGIT_ATOL = 1e-4


def _requests(make_image):
    return [VLMRequest("Where is the mug?", make_image(11)),
            VLMRequest("Is the red box to the left of the blue cylinder? Answer yes or no.", make_image(12))]


def test_export_writes_the_documented_artifacts(onnx_dir):
    import onnx

    names = {p.name for p in onnx_dir.iterdir()}
    for f in ("vision_encoder.onnx", "embed_tokens.onnx", "decoder_model_merged.onnx", "export_meta.json",
              "tokenizer.json", "config.json"):
        assert f in names
    meta = json.loads((onnx_dir / "export_meta.json").read_text())
    assert meta["family"] == "llava" and meta["num_layers"] == 2 and meta["num_kv_heads"] == 2
    decoder = onnx.load(str(onnx_dir / "decoder_model_merged.onnx"), load_external_data=False)
    inputs = [i.name for i in decoder.graph.input]
    assert inputs[:3] == ["inputs_embeds", "attention_mask", "position_ids"]
    assert inputs[3:] == meta["past_names"]
    assert [o.name for o in decoder.graph.output] == ["logits"] + meta["present_names"]


def test_prefill_logits_match_pytorch(torch_engine, onnx_engine, make_image):
    requests = _requests(make_image)
    ort_logits = onnx_engine.prefill_logits(requests)
    inputs = torch_engine._inputs([torch_engine.prompt(r) for r in requests], [r.image for r in requests], "left")
    mask = inputs["attention_mask"]
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    with torch.inference_mode():
        ref = torch_engine.model(**inputs, position_ids=positions).logits.float().numpy()
    valid = mask.numpy().astype(bool)
    assert ort_logits.shape == ref.shape
    err = np.abs(ort_logits - ref)[valid].max()
    assert err < LOGIT_ATOL, f"max |logit diff| {err}"
    assert not np.allclose(ref[0][valid[0]], ref[1][valid[1]][-valid[0].sum():])   # the rows differ


@pytest.mark.parametrize("io_binding", [False, True])
def test_greedy_tokens_and_logprobs_match_pytorch(torch_engine, onnx_dir, make_image, io_binding):
    from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine

    engine = OnnxEngine(onnx_dir, device="cpu", io_binding=io_binding)
    opts = GenerationOptions(max_new_tokens=12, return_logprobs=True)
    requests = _requests(make_image)
    ref = torch_engine.generate(requests, opts)
    got = engine.generate(requests, opts)
    for r, g in zip(ref, got):
        assert g.token_ids == r.token_ids
        assert g.text == r.text and g.finish_reason == r.finish_reason
        np.testing.assert_allclose(g.token_logprobs, r.token_logprobs, atol=LOGIT_ATOL)
    single = engine.answer(requests[0], opts)                   # batch size 1 through the same graphs
    assert single.token_ids == ref[0].token_ids


def test_caption_scores_match_pytorch(torch_engine, onnx_engine, make_image):
    captions = ["The mug is on the book.", "The mug is under the book.", "The mug is left of the book."]
    image = make_image(13)
    np.testing.assert_allclose(onnx_engine.score_captions(image, captions),
                               torch_engine.score_captions(image, captions), atol=1e-3)


def test_provider_fallback_is_reported(onnx_dir):
    """Asking for the GPU on a machine without one ends on the CPU provider with a reason per skipped one."""
    from spatial_vlm_ros.runtime.providers import PROVIDER_PRIORITY
    from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine

    engine = OnnxEngine(onnx_dir, device="cuda")
    if engine.provider != "CPUExecutionProvider":
        pytest.skip(f"a GPU provider works here ({engine.provider})")
    skipped = [r.split(":", 1)[0] for r in engine.fallbacks]
    assert skipped == list(PROVIDER_PRIORITY[:2])
    assert not engine.io_binding


def test_runner_refuses_what_the_export_cannot_do(onnx_dir, tmp_path):
    from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine

    with pytest.raises(InputError, match="re-export"):
        OnnxEngine(onnx_dir, interventions=InterventionConfig(vision_layer=1))
    with pytest.raises(InputError, match="not an ONNX export"):
        OnnxEngine(tmp_path)


def test_export_refuses_unsupported_families(tmp_path):
    from spatial_vlm_ros.vlm.onnx_export import ExportRecipe, export_model

    model_dir = tmp_path / "paligemma"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"model_type": "paligemma"}))
    with pytest.raises(InputError, match="ONNX export supports"):
        export_model(ExportRecipe(model=str(model_dir), output=str(tmp_path / "out")))


@pytest.mark.skipif(not __import__("os").environ.get("SVR_FULL_VLM"),
                    reason="second export (~20 s); set SVR_FULL_VLM=1 to run")
def test_siglip_qwen2_llava_variant_exports_with_parity(tmp_path, make_image):
    """The llava-interleave / OneVision-like layout (SigLIP tower without CLS, Qwen2 decoder)."""
    from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine
    from spatial_vlm_ros.vlm.onnx_export import ExportRecipe, export_model
    from spatial_vlm_ros.vlm.tiny_models import save_tiny_model
    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    model_dir = save_tiny_model(tmp_path / "m", "llava", variant="siglip_qwen2")
    export_model(ExportRecipe(model=str(model_dir), output=str(tmp_path / "onnx"), optimize=False))
    opts = GenerationOptions(max_new_tokens=10, return_logprobs=True)
    requests = _requests(make_image)
    ref = TransformersEngine(str(model_dir)).generate(requests, opts)
    got = OnnxEngine(tmp_path / "onnx").generate(requests, opts)
    for r, g in zip(ref, got):
        assert g.token_ids == r.token_ids
        np.testing.assert_allclose(g.token_logprobs, r.token_logprobs, atol=LOGIT_ATOL)

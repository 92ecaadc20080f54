"""Qwen2-VL family ONNX export + onnxruntime engine against transformers, on tiny random models.

Each family is exported once per module (fp32, CPU provider). Tolerances: logits of valid positions within
1e-4 absolute (prefill and decode steps), identical greedy tokens, token log-probabilities within 1e-4;
caption scores within 1e-3 (sums over tokens). The fp16 export is checked to load and run with logits
within 0.1 absolute of fp32 PyTorch (logits of magnitude ~5). Images of two sizes give two different patch
grids in one left-padded batch. Every family runs: Qwen2-VL, Qwen2.5-VL (window attention), Qwen3-VL
(deepstack), plus the bad-input cases; ``SVR_FULL_VLM=1`` adds the fp16 export.
"""
import os

import numpy as np
import pytest
import torch

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm.engine import GenerationOptions, VLMRequest

pytest.importorskip("onnxruntime")

LOGIT_ATOL = 1e-4
FULL = bool(os.environ.get("SVR_FULL_VLM"))
_full_only = pytest.mark.skipif(not FULL, reason="one more export (the fp16 one); set SVR_FULL_VLM=1 to run")
FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]
#: The smallest tiny models that keep each family's code paths (export time grows with the layer count):
#: Qwen2.5-VL needs two vision blocks (windowed, then full attention), Qwen3-VL two decoder layers for its
#: two deepstack feature blocks.
TINY = {"qwen2_vl": dict(hidden_size=32, num_layers=1, vision_layers=1),
        "qwen2_5_vl": dict(hidden_size=32, num_layers=1, vision_layers=2),
        "qwen3_vl": dict(hidden_size=32, num_layers=2, vision_layers=2)}


class Exported:
    """A tiny model directory, its export, the ONNX engine and the transformers reference model."""

    def __init__(self, root, family: str, dtype: str = "float32"):
        from transformers import AutoModelForImageTextToText

        from spatial_vlm_ros.vlm.export_qwen_vl import export_qwen_vl
        from spatial_vlm_ros.vlm.onnx_export import ExportRecipe
        from spatial_vlm_ros.vlm.onnx_qwen_vl import QwenVLOnnxEngine
        from spatial_vlm_ros.vlm.tiny_models import save_tiny_model

        self.model_dir = save_tiny_model(root / "model", family, **TINY[family])
        self.onnx_dir = export_qwen_vl(ExportRecipe(model=str(self.model_dir), output=str(root / "onnx"),
                                                    dtype=dtype, optimize=False))
        self.engine = QwenVLOnnxEngine(self.onnx_dir, device="cpu")
        self.model = AutoModelForImageTextToText.from_pretrained(self.model_dir, attn_implementation="eager").eval()

    def torch_inputs(self, requests):
        inputs, _ = self.engine._request_inputs(requests, GenerationOptions())
        return {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}

    def prefill_logits(self, requests):
        """``(onnx, transformers, valid)``: prompt-pass logits (B, S, V) of both and the (B, S) valid mask."""
        inputs = self.torch_inputs(requests)
        with torch.inference_mode():
            ref = self.model(**inputs).logits.float().numpy()
        return self.engine.prefill_logits(requests), ref, inputs["attention_mask"].numpy().astype(bool)


@pytest.fixture(scope="module", params=FAMILIES)
def exported(request, tmp_path_factory):
    return Exported(tmp_path_factory.mktemp(request.param), request.param)


def _requests(make_image):
    return [VLMRequest("Where is the mug?", make_image(21, 48, 64)),
            VLMRequest("Is the red box to the left of the blue cylinder? Answer yes or no.",
                       make_image(22, 100, 150))]


def test_two_image_sizes_give_two_grids(exported, make_image):
    grids = exported.torch_inputs(_requests(make_image))["image_grid_thw"].tolist()
    assert grids[0] != grids[1]


def test_mrope_positions_match_get_rope_index(exported, make_image):
    from spatial_vlm_ros.vlm.onnx_qwen_vl import mrope_positions

    inputs = exported.torch_inputs(_requests(make_image))
    ref, _ = exported.model.model.get_rope_index(
        inputs["input_ids"], mm_token_type_ids=inputs["mm_token_type_ids"],
        image_grid_thw=inputs["image_grid_thw"], attention_mask=inputs["attention_mask"])
    got = mrope_positions(inputs["input_ids"].numpy(), inputs["attention_mask"].numpy(),
                          inputs["image_grid_thw"].numpy(), exported.engine.meta["image_token_id"], 2)
    valid = inputs["attention_mask"].numpy().astype(bool)
    np.testing.assert_array_equal(got.transpose(2, 0, 1)[:, valid], ref.numpy()[:, valid])


def test_prefill_logits_match_transformers(exported, make_image):
    got, ref, valid = exported.prefill_logits(_requests(make_image))
    assert got.shape == ref.shape
    err = np.abs(got - ref)[valid].max()
    assert err <= LOGIT_ATOL, f"max |logit diff| {err}"


def test_decode_step_logits_match_transformers(exported, make_image):
    """Prefill, then three decode steps fed transformers' greedy tokens: every step's logits match."""
    requests, steps = _requests(make_image), 4
    inputs = exported.torch_inputs(requests)
    with torch.inference_mode():
        ref = exported.model.generate(**inputs, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                                      output_logits=True, return_dict_in_generate=True,
                                      pad_token_id=exported.engine.tokenizer.pad_token_id)
    engine = exported.engine
    _, mask, embeds, positions = engine._prefill_inputs({k: v.numpy() for k, v in inputs.items()}, True)
    past = engine._empty_past(mask.shape[0])
    new_tokens = ref.sequences[:, inputs["input_ids"].shape[1]:].numpy()
    for step in range(steps):
        logits, past = engine.decode_step(embeds, mask, positions, past)
        err = np.abs(logits[:, -1] - ref.logits[step].float().numpy()).max()
        assert err <= LOGIT_ATOL, f"step {step}: max |logit diff| {err}"
        embeds = engine.embed.run(None, {"input_ids": new_tokens[:, step:step + 1]})[0]
        positions = positions[:, -1:] + 1
        mask = np.concatenate([mask, np.ones((mask.shape[0], 1), dtype=np.int64)], axis=1)


def test_greedy_tokens_and_logprobs_match_transformers(exported, make_image):
    requests = _requests(make_image)
    opts = GenerationOptions(max_new_tokens=8, return_logprobs=True)
    got = exported.engine.generate(requests, opts)
    for i, request in enumerate([requests, requests[1:]]):       # the batch, then one image alone
        inputs = exported.torch_inputs(request)
        with torch.inference_mode():
            ref = exported.model.generate(**inputs, max_new_tokens=8, do_sample=False, output_logits=True,
                                          return_dict_in_generate=True,
                                          pad_token_id=exported.engine.tokenizer.pad_token_id)
        new = ref.sequences[:, inputs["input_ids"].shape[1]:]
        ref_lp = torch.gather(torch.stack(ref.logits, 1).float().log_softmax(-1), 2, new[..., None])[..., 0]
        answers = got if i == 0 else exported.engine.generate(request, opts)
        for row, answer in enumerate(answers):
            n = len(answer.token_ids)
            assert list(answer.token_ids) == new[row, :n].tolist()
            np.testing.assert_allclose(answer.token_logprobs, ref_lp[row, :n].numpy(), atol=LOGIT_ATOL)


def test_caption_scores_match_transformers(exported, make_image):
    from spatial_vlm_ros.vlm.engine import caption_logprob_sums

    captions = ["The mug is on the book.", "The mug is under the book.", "Left."]
    image = make_image(23, 60, 90)
    engine = exported.engine
    inputs, n_head = engine._caption_inputs(image, captions, "Describe the image in one sentence.")
    pt = {k: torch.from_numpy(np.asarray(v)) for k, v in inputs.items()}
    with torch.inference_mode():
        logits = exported.model(**pt).logits.float().numpy()
    ref = caption_logprob_sums(logits, inputs["input_ids"], inputs["attention_mask"], n_head)
    np.testing.assert_allclose(engine.score_captions(image, captions), ref, atol=1e-3)


def test_transformers_engine_loads_without_torchvision_and_agrees(exported, make_image):
    """The transformers backend loads the image-only processor (no torchvision) and answers as the ONNX
    engine does."""
    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    engine = TransformersEngine(str(exported.model_dir), attn_implementation="eager")
    assert type(engine.processor).__name__ == "QwenVLImageProcessor"
    assert type(engine.processor.image_processor).__name__ == "Qwen2VLImageProcessorPil"
    requests, opts = _requests(make_image), GenerationOptions(max_new_tokens=6, return_logprobs=True)
    for ref, got in zip(engine.generate(requests, opts), exported.engine.generate(requests, opts)):
        assert got.token_ids == ref.token_ids and got.text == ref.text
        np.testing.assert_allclose(got.token_logprobs, ref.token_logprobs, atol=LOGIT_ATOL)


def test_engine_refuses_bad_inputs(exported, make_image):
    engine = exported.engine
    with pytest.raises(InputError, match="context"):
        engine.generate([VLMRequest("where? " * 700, make_image(24))], GenerationOptions(max_new_tokens=2))
    with pytest.raises(InputError, match="aspect ratio"):
        engine.answer(VLMRequest("What is this?", make_image(24, 2, 600)))
    inputs, _ = engine._request_inputs(_requests(make_image)[:1], GenerationOptions())
    with pytest.raises(InputError, match="does not describe"):
        engine.image_features(np.asarray(inputs["pixel_values"]), np.array([[1, 2, 2]]))
    ids = np.asarray(inputs["input_ids"])
    text_only = np.where(ids == engine.meta["image_token_id"], engine.meta["pad_token_id"], ids)
    with pytest.raises(InputError, match="image tokens"):
        engine.embeddings(text_only, np.asarray(inputs["pixel_values"]),
                          image_grid_thw=np.asarray(inputs["image_grid_thw"]))


def test_export_refuses_other_families(tiny_llava_dir, tmp_path):
    from spatial_vlm_ros.vlm.export_qwen_vl import export_qwen_vl
    from spatial_vlm_ros.vlm.onnx_export import ExportRecipe

    with pytest.raises(InputError, match="export_qwen_vl exports"):
        export_qwen_vl(ExportRecipe(model=str(tiny_llava_dir), output=str(tmp_path / "out")))


@_full_only
def test_fp16_export_loads_and_runs(tmp_path, make_image):
    fp16 = Exported(tmp_path, "qwen2_5_vl", dtype="float16")
    assert fp16.engine.float == np.float16
    requests = _requests(make_image)
    got, ref, valid = fp16.prefill_logits(requests)
    assert np.isfinite(got[valid]).all()
    assert np.abs(got - ref)[valid].max() <= 0.1
    assert 1 <= len(fp16.engine.answer(requests[0], GenerationOptions(max_new_tokens=3)).token_ids) <= 3

"""The Beyond Semantics interventions change exactly what they claim and nothing else.

vision_norm="text_mean": every vision token entering the language model gets the mean text-embedding norm,
keeps its direction; text-token embeddings are bit-identical. vision_layer=k: the features the projector
receives are the vision tower's hidden state k; text tokens are untouched.
"""
import numpy as np
import pytest
import torch

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm.interventions import InterventionConfig, apply_interventions, resolve_layer, text_norm_stats
from spatial_vlm_ros.vlm.tiny_models import qwen2_vl_pixel_inputs, tiny_llava, tiny_qwen2_vl


def _capture(module, with_kwargs_key=None):
    """Record the first positional input (or a keyword input) of every call of ``module``."""
    seen = []

    def hook(_m, args, kwargs):
        seen.append((kwargs[with_kwargs_key] if with_kwargs_key else args[0]).detach().clone())
    module.register_forward_pre_hook(hook, with_kwargs=True)
    return seen


def _llava_inputs(processor, image):
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is the mug?"}]}],
        add_generation_prompt=True)
    return processor(images=[image], text=[text], return_tensors="pt")


def _run_llava(config, image):
    model, processor = tiny_llava(seed=3)
    apply_interventions(model, config, exclude_ids=processor.tokenizer.all_special_ids)
    embeds = _capture(model.model.language_model, "inputs_embeds")
    projector_in = _capture(model.model.multi_modal_projector)
    inputs = _llava_inputs(processor, image)
    with torch.inference_mode():
        logits = model(**inputs).logits
    image_pos = inputs["input_ids"][0] == model.config.image_token_id
    return model, inputs, embeds[0][0], projector_in[0], image_pos, logits


def test_llava_vision_norm_rescales_only_vision_tokens(make_image):
    image = make_image(21)
    model, _, base, _, image_pos, _ = _run_llava(InterventionConfig(), image)
    _, _, normed, _, _, _ = _run_llava(InterventionConfig(vision_norm="text_mean"), image)
    stats = text_norm_stats(model.get_input_embeddings().weight,
                            tiny_llava(seed=3)[1].tokenizer.all_special_ids)
    base_norms = base[image_pos].norm(dim=-1)
    assert not torch.allclose(base_norms, torch.tensor(stats.mean), rtol=0.05)   # there was a gap
    np.testing.assert_allclose(normed[image_pos].norm(dim=-1).numpy(), stats.mean, rtol=1e-5)
    cos = torch.nn.functional.cosine_similarity(normed[image_pos], base[image_pos], dim=-1)
    np.testing.assert_allclose(cos.numpy(), 1.0, atol=1e-5)                     # directions kept
    assert torch.equal(normed[~image_pos], base[~image_pos])                    # text untouched


def test_llava_vision_layer_feeds_hidden_state_k(make_image):
    image = make_image(22)
    model, inputs, base, base_proj_in, image_pos, _ = _run_llava(InterventionConfig(), image)
    _, _, mid, mid_proj_in, _, _ = _run_llava(InterventionConfig(vision_layer=1), image)
    with torch.inference_mode():
        hidden = model.model.vision_tower(inputs["pixel_values"], output_hidden_states=True).hidden_states
    assert torch.allclose(base_proj_in, hidden[-1][:, 1:])                     # default: last layer
    assert torch.allclose(mid_proj_in, hidden[1][:, 1:])                       # intervention: layer 1
    assert not torch.allclose(mid_proj_in, base_proj_in)
    assert not torch.allclose(mid[image_pos], base[image_pos])
    assert torch.equal(mid[~image_pos], base[~image_pos])


def test_interventions_leave_text_only_prompts_unchanged():
    model0, processor = tiny_llava(seed=3)
    model1, _ = tiny_llava(seed=3)
    apply_interventions(model1, InterventionConfig(vision_norm="text_mean", vision_layer=-2))
    ids = processor.tokenizer(["How far is the mug?"], return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(model0(**ids).logits, model1(**ids).logits)


def _run_qwen(config, seed=4):
    model, tokenizer = tiny_qwen2_vl(seed=seed)
    apply_interventions(model, config, exclude_ids=tokenizer.all_special_ids)
    embeds = _capture(model.model.language_model, "inputs_embeds")
    merger_in = _capture(model.model.visual.merger)
    pixel_values, grid, n_tokens = qwen2_vl_pixel_inputs(model, 1)
    text = ("<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * n_tokens +
            "<|vision_end|>Where is the mug?<|im_end|>\n<|im_start|>assistant\n")
    ids = tokenizer([text], return_tensors="pt")
    image_pos = ids["input_ids"][0] == model.config.image_token_id
    with torch.inference_mode():
        model(**ids, pixel_values=pixel_values, image_grid_thw=grid, mm_token_type_ids=image_pos[None].long())
    return model, tokenizer, embeds[0][0], merger_in[0], image_pos


def test_qwen2_vl_vision_norm_and_layer():
    model, tokenizer, base, base_merger_in, image_pos = _run_qwen(InterventionConfig())
    stats = text_norm_stats(model.get_input_embeddings().weight, tokenizer.all_special_ids)
    _, _, normed, _, _ = _run_qwen(InterventionConfig(vision_norm="text_mean"))
    np.testing.assert_allclose(normed[image_pos].norm(dim=-1).numpy(), stats.mean, rtol=1e-5)
    assert torch.equal(normed[~image_pos], base[~image_pos])

    # layer 1 of 3: the merger sees block 1's output of the unmodified tower
    ref_model, _ = tiny_qwen2_vl(seed=4)
    block_out = []
    ref_model.model.visual.blocks[0].register_forward_hook(lambda _m, _i, out: block_out.append(out))
    pixel_values, grid, _ = qwen2_vl_pixel_inputs(ref_model, 1)
    with torch.inference_mode():
        ref_model.model.visual(pixel_values, grid_thw=grid)
    m1, _, mid, mid_merger_in, _ = _run_qwen(InterventionConfig(vision_layer=1))
    assert len(m1.model.visual.blocks) == 1
    assert torch.allclose(mid_merger_in, block_out[0])
    assert not torch.allclose(mid_merger_in, base_merger_in)
    assert torch.equal(mid[~image_pos], base[~image_pos])


def test_onnx_runner_applies_the_same_norm(onnx_dir, torch_engine, make_image):
    from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine

    engine = OnnxEngine(onnx_dir, interventions=InterventionConfig(vision_norm="text_mean"))
    plain = OnnxEngine(onnx_dir)
    pixels = np.asarray(engine._inputs(["<image>"], [make_image(23)], "left")["pixel_values"])
    feats, raw = engine.image_features(pixels), plain.image_features(pixels)
    stats = text_norm_stats(torch_engine.model.get_input_embeddings().weight,
                            torch_engine.tokenizer.all_special_ids)
    assert engine.meta["text_norm_stats"]["mean"] == pytest.approx(stats.mean, rel=1e-6)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=-1), stats.mean, rtol=1e-5)
    cos = (feats * raw).sum(-1) / np.linalg.norm(feats, axis=-1) / np.linalg.norm(raw, axis=-1)
    np.testing.assert_allclose(cos, 1.0, atol=1e-5)


def test_engine_applies_configured_interventions(tiny_llava_dir):
    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    engine = TransformersEngine(str(tiny_llava_dir),
                                interventions=InterventionConfig(vision_norm="text_mean", vision_layer=-2))
    assert engine.applied["vision_layer"] == 2               # 3 blocks: -2 is hidden state 2
    assert engine.model.config.vision_feature_layer == 2
    assert engine.applied["vision_norm"].mean > 0


@pytest.mark.parametrize("layer, blocks, expected", [(0, 3, 0), (3, 3, 3), (-1, 3, 3), (-4, 3, 0)])
def test_resolve_layer(layer, blocks, expected):
    assert resolve_layer(layer, blocks) == expected


@pytest.mark.parametrize("config", [InterventionConfig(vision_layer=4), InterventionConfig(vision_layer=-5),
                                    InterventionConfig(vision_norm="mean")])
def test_bad_intervention_settings_raise(config):
    model, _ = tiny_llava(seed=3)
    with pytest.raises(InputError):
        apply_interventions(model, config)

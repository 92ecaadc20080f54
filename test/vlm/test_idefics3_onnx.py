"""Idefics3 / SmolVLM ONNX export + onnxruntime engine against transformers on tiny random models.

Each family (SmolVLM, Idefics3) is built, saved and exported once (module-scoped fixtures);
``SVR_FULL_VLM=1`` adds a float16 export. Tolerances (fp32, CPU): logits of valid positions
within 1e-4 absolute at prefill and at each decode step, identical greedy tokens. The two test images give
different tile counts (5 and 3 tiles), so a batch also carries zero padding tiles.
"""
import json
import os

import numpy as np
import pytest
import torch

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm.engine import GenerationOptions, VLMRequest, load_processor, to_pil

LOGIT_ATOL = 1e-4
IMAGE_SIZES = ((48, 64), (16, 64))          # (H, W) px -> 2 x 2 tiles + global, 1 x 2 tiles + global
DECODE_STEPS = 6
#: The smallest sizes that keep the tile layout (32 px tiles of 8 px patches, 4 image tokens per tile);
#: export time grows with the layer count.
TINY = dict(hidden_size=32, num_layers=1, vision_hidden_size=16, vision_layers=1)


def _save_like_the_hub(directory, family: str):
    """Save a tiny model; a SmolVLM one labelled ``SmolVLMProcessor`` as the hub's SmolVLM2 checkpoints are
    (whose ``AutoProcessor`` needs a torchvision video processor)."""
    from spatial_vlm_ros.vlm.tiny_models import save_tiny_model

    save_tiny_model(directory, family, seed=1, **TINY)
    if family == "smolvlm":
        path = directory / "processor_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "processor_class": "SmolVLMProcessor"}))
    return directory


FULL = bool(os.environ.get("SVR_FULL_VLM"))
#: Each export takes most of a minute here; by default only SmolVLM (the SmolVLM2 layout) is exported.
FAMILIES = ["smolvlm", "idefics3"]


@pytest.fixture(scope="module", params=FAMILIES)
def case(request, tmp_path_factory):
    """``(family, model_dir, export_dir, torch_model)`` of one family, exported once (float32)."""
    from transformers import AutoModelForImageTextToText

    from spatial_vlm_ros.vlm.onnx_export import ExportRecipe, export_model

    family = request.param
    model_dir = _save_like_the_hub(tmp_path_factory.mktemp(f"tiny_{family}"), family)
    out = export_model(ExportRecipe(model=str(model_dir), output=str(tmp_path_factory.mktemp(f"{family}_onnx")),
                                    optimize=False))
    model = AutoModelForImageTextToText.from_pretrained(model_dir, attn_implementation="eager").eval()
    return family, model_dir, out, model


@pytest.fixture(scope="module")
def engine(case):
    from spatial_vlm_ros.vlm.onnx_engine import open_onnx_engine

    return open_onnx_engine(case[2], device="cpu")


def _requests(make_image):
    return [VLMRequest("Where is the mug?", make_image(21, *IMAGE_SIZES[0])),
            VLMRequest("Is the red box left of the blue cylinder? Answer yes or no.",
                       make_image(22, *IMAGE_SIZES[1]))]


def _torch_inputs(engine, requests):
    """The left-padded processor batch as torch tensors, as the transformers backend builds it."""
    engine.tokenizer.padding_side = "left"
    return engine.processor(text=[engine.prompt(r) for r in requests],
                            images=[[to_pil(r.image)] for r in requests],
                            padding=True, return_tensors="pt")


def _reference(model, inputs, steps: int):
    """transformers greedy decoding: ``(tokens (B, steps), per-step logits (B, steps, V))``."""
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=steps, min_new_tokens=steps, do_sample=False,
                             output_logits=True, return_dict_in_generate=True)
    new = out.sequences[:, inputs["input_ids"].shape[1]:].numpy()
    return new, torch.stack(out.logits, dim=1).float().numpy()


def _onnx_step_logits(engine, requests, tokens: np.ndarray) -> np.ndarray:
    """Last-position logits (B, T, V) of the prefill and of decode steps fed ``tokens`` (teacher forcing)."""
    inputs, _ = engine._request_inputs(requests, GenerationOptions())
    ids, mask, embeds, positions = engine._prefill_inputs(inputs, with_image=True)
    past, steps = engine._empty_past(ids.shape[0]), []
    for t in range(tokens.shape[1]):
        logits, past = engine.decode_step(embeds, mask, positions, past)
        steps.append(logits[:, -1])
        embeds = engine.embed.run(None, {"input_ids": tokens[:, t:t + 1].astype(np.int64)})[0]
        positions = positions[:, -1:] + 1
        mask = np.concatenate([mask, np.ones_like(mask[:, :1])], axis=1)
    return np.stack(steps, axis=1)


def test_export_layout_and_runtime_class(case, engine):
    import onnx

    family, _, out, _ = case
    meta = json.loads((out / "export_meta.json").read_text())
    assert meta["family"] == family and meta["image_size"] == 32 and meta["image_seq_len"] == 4
    assert type(engine).__name__ == "Idefics3OnnxEngine"
    vision = onnx.load(str(out / "vision_encoder.onnx"), load_external_data=False)
    assert [i.name for i in vision.graph.input] == ["pixel_values"]
    assert vision.graph.input[0].type.tensor_type.shape.dim[0].dim_param        # any number of tiles


def test_processor_loads_without_torchvision(case):
    """The saved (and, for SmolVLM, hub-labelled) directories load with the PIL image processor."""
    family, model_dir, out, _ = case
    for directory in (model_dir, out):
        processor = load_processor(str(directory))
        assert type(processor).__name__ == "Idefics3Processor"
        assert type(processor.image_processor).__name__.endswith("ImageProcessorPil")
        assert type(processor.image_processor).__name__.lower().startswith(family)


def test_images_of_different_sizes_give_different_tile_counts(engine, make_image):
    inputs = _torch_inputs(engine, _requests(make_image))
    real_tiles = (inputs["pixel_values"] != 0).flatten(2).any(-1).sum(1).tolist()
    assert real_tiles == [5, 3]


@pytest.mark.parametrize("io_binding", [False, True])
def test_prefill_and_decode_logits_match_transformers(case, engine, make_image, io_binding):
    model = case[3]
    requests = _requests(make_image)
    tokens, ref = _reference(model, _torch_inputs(engine, requests), DECODE_STEPS)
    engine.io_binding = io_binding
    try:
        got = _onnx_step_logits(engine, requests, tokens)
    finally:
        engine.io_binding = False
    assert got.shape == ref.shape
    err = np.abs(got - ref).max()
    assert err < LOGIT_ATOL, f"max |logit diff| over prefill + {DECODE_STEPS - 1} decode steps: {err}"
    assert not np.allclose(ref[0], ref[1], atol=1e-2)                          # the rows differ


def test_full_prefill_logits_match_transformers(case, engine, make_image):
    model = case[3]
    requests = _requests(make_image)
    inputs = _torch_inputs(engine, requests)
    mask = inputs["attention_mask"]
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    with torch.inference_mode():
        ref = model(**inputs, position_ids=positions).logits.float().numpy()
    got = engine.prefill_logits(requests)
    valid = mask.numpy().astype(bool)
    assert np.abs(got - ref)[valid].max() < LOGIT_ATOL


def test_greedy_tokens_match_and_io_binding_changes_nothing(case, engine, make_image):
    from spatial_vlm_ros.vlm.onnx_engine import open_onnx_engine

    requests = _requests(make_image)
    tokens, _ = _reference(case[3], _torch_inputs(engine, requests), DECODE_STEPS)
    opts = GenerationOptions(max_new_tokens=DECODE_STEPS, return_logprobs=True)
    plain = engine.generate(requests, opts)
    bound = open_onnx_engine(case[2], device="cpu", io_binding=True).generate(requests, opts)
    for row, p, b in zip(tokens, plain, bound):
        eos = next((n + 1 for n, t in enumerate(row) if t in engine.meta["eos_token_ids"]), len(row))
        assert p.token_ids == tuple(int(t) for t in row[:eos])
        assert b.token_ids == p.token_ids and b.text == p.text
        np.testing.assert_allclose(b.token_logprobs, p.token_logprobs, rtol=0, atol=1e-6)
    assert engine.answer(requests[1], opts).token_ids == plain[1].token_ids     # batch of one, no padding


def test_transformers_engine_loads_without_torchvision_and_agrees(case, engine, make_image):
    """The transformers backend opens the hub-labelled directory with ``Idefics3Processor`` (no torchvision)
    and answers as the ONNX engine does."""
    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    torch_engine = TransformersEngine(str(case[1]), attn_implementation="eager")
    assert type(torch_engine.processor).__name__ == "Idefics3Processor"
    requests = _requests(make_image)
    opts = GenerationOptions(max_new_tokens=DECODE_STEPS, return_logprobs=True)
    for ref, got in zip(torch_engine.generate(requests, opts), engine.generate(requests, opts)):
        assert got.token_ids == ref.token_ids and got.text == ref.text
        np.testing.assert_allclose(got.token_logprobs, ref.token_logprobs, atol=LOGIT_ATOL)


def test_bad_inputs_are_refused(case, engine, make_image, tmp_path):
    from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine, open_onnx_engine

    out = case[2]
    with pytest.raises(InputError, match="context"):
        engine.generate([VLMRequest("where? " * 700, make_image(23, 16, 64))], GenerationOptions(max_new_tokens=2))
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in out.iterdir():
        if f.name != "decoder_model_merged.onnx":
            (partial / f.name).symlink_to(f)
    with pytest.raises(InputError, match="missing decoder_model_merged.onnx"):
        open_onnx_engine(partial)
    with pytest.raises(InputError, match="open_onnx_engine"):
        OnnxEngine(out)                                                  # the LLaVA class on an Idefics3 export


def test_unsupported_architectures_are_refused(tmp_path, capsys):
    from spatial_vlm_ros.cli import main as cli_main
    from spatial_vlm_ros.vlm.onnx_engine import open_onnx_engine
    from spatial_vlm_ros.vlm.onnx_export import ExportRecipe, export_model

    model_dir = tmp_path / "paligemma"
    model_dir.mkdir()
    (model_dir / "config.json").write_text(json.dumps({"model_type": "paligemma"}))
    with pytest.raises(InputError, match=r"ONNX export supports .*idefics3.*smolvlm.*not 'paligemma'"):
        export_model(ExportRecipe(model=str(model_dir), output=str(tmp_path / "out")))
    # the CLI forwards its options whatever their order (issue 12: --model was "unrecognized")
    assert cli_main(["export-onnx", "--out", str(tmp_path / "out"), "--dtype", "float32",
                     "--model", str(model_dir)]) == 2
    assert "ONNX export supports" in capsys.readouterr().out
    fake = tmp_path / "fake_export"
    fake.mkdir()
    (fake / "export_meta.json").write_text(json.dumps({"family": "paligemma"}))
    with pytest.raises(InputError, match="the ONNX backend supports .*llava"):
        open_onnx_engine(fake)


@pytest.mark.skipif(not FULL, reason="another export (most of a minute); set SVR_FULL_VLM=1 to run")
def test_float16_export_runs(tmp_path, make_image):
    """A float16 SmolVLM export runs on the CPU provider and stays near the float32 PyTorch model."""
    import onnx
    from transformers import AutoModelForImageTextToText

    from spatial_vlm_ros.vlm.onnx_engine import open_onnx_engine
    from spatial_vlm_ros.vlm.onnx_export import ExportRecipe, export_model

    model_dir = _save_like_the_hub(tmp_path / "m", "smolvlm")
    out = export_model(ExportRecipe(model=str(model_dir), output=str(tmp_path / "onnx"), dtype="float16",
                                    optimize=False))
    vision = onnx.load(str(out / "vision_encoder.onnx"), load_external_data=False)
    assert vision.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    engine = open_onnx_engine(out, device="cpu")
    requests = _requests(make_image)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, attn_implementation="eager").eval()
    tokens, ref = _reference(model, _torch_inputs(engine, requests), 3)
    got = _onnx_step_logits(engine, requests, tokens)
    assert np.isfinite(got).all()
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()
    answers = engine.generate(requests, GenerationOptions(max_new_tokens=3))
    assert all(len(a.token_ids) >= 1 for a in answers)

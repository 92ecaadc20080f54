"""Export a Hugging Face VLM to ONNX: vision encoder, token embedding and a text decoder with a KV cache.

Supported families: LLaVA (``LlavaForConditionalGeneration``: any CLIP/SigLIP-style vision tower with a
fixed input size, the LLaVA projector, and a decoder-only language model whose cache is a
``DynamicCache`` of per-layer keys/values, e.g. Llama, Mistral, Qwen2). Qwen2-VL / Qwen2.5-VL (3D M-RoPE
positions, variable image grids) and Idefics3/SmolVLM (image splitting) are not exported; run them with the
transformers backend.

Artifacts written to the output directory (the layout ``OnnxEngine`` loads, similar to the onnx-community
VLM exports)::

    vision_encoder.onnx          pixel_values (B, 3, H, W) -> image_features (B, N, hidden)
    embed_tokens.onnx            input_ids (B, S) int64 -> inputs_embeds (B, S, hidden)
    decoder_model_merged.onnx    inputs_embeds (B, S, hidden), attention_mask (B, P + S) int64,
                                 position_ids (B, S) int64, past_key_values.{i}.key/value (B, kv, P, d)
                                 -> logits (B, S, vocab), present.{i}.key/value (B, kv, P + S, d)
    export_meta.json             family, dtype, dims, special ids, vision layer, text-norm statistics
    processor / tokenizer files  (``AutoProcessor.save_pretrained``), config.json, generation_config.json

The decoder is one graph for prefill (past length P = 0) and decode (S = 1). Export uses
``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript) with eager attention. Logits of padded
query positions are not meaningful (they differ between PyTorch and ONNX); valid positions match.
The vision layer (``vision_layer``) is fixed at export; the norm intervention is applied by the runner.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm.interventions import InterventionConfig, apply_interventions, text_norm_stats

log = logging.getLogger(__name__)

SUPPORTED_EXPORT_FAMILIES = ("llava",)
VISION_FILE = "vision_encoder.onnx"
EMBED_FILE = "embed_tokens.onnx"
DECODER_FILE = "decoder_model_merged.onnx"
META_FILE = "export_meta.json"


@dataclass(frozen=True)
class ExportRecipe:
    """What to export and how (the fields of models/export.yaml)."""

    model: str                       # hub id or local directory (safetensors)
    output: str                      # output directory
    dtype: str = "float32"           # "float32" or "float16" (the graph's float type)
    opset: int = 18
    vision_layer: int | None = None  # bake this vision-tower layer in (see interventions); None = default
    local_files_only: bool = True
    optimize: bool = True            # run the onnxscript graph optimiser (constant folding, fusions)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "ExportRecipe":
        import yaml

        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        data = {**data.get("export", data), **{k: v for k, v in overrides.items() if v is not None}}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown export recipe keys: {sorted(unknown)}")
        return cls(**data)


def _wrappers(model, num_layers: int):
    """torch modules with flat tensor signatures for the three graphs."""
    import torch
    from transformers import DynamicCache

    lm = model.model.language_model
    head = model.lm_head
    cfg = model.config

    class VisionEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vlm = model.model

        def forward(self, pixel_values):
            # LlavaModel.get_image_features without its per-image list (which would fix the batch size)
            hidden = self.vlm.vision_tower(pixel_values, output_hidden_states=True).hidden_states
            layers = cfg.vision_feature_layer
            layers = [layers] if isinstance(layers, int) else list(layers)
            feats = [hidden[k] for k in layers]
            if cfg.vision_feature_select_strategy == "default":
                feats = [f[:, 1:] for f in feats]
            return self.vlm.multi_modal_projector(torch.cat(feats, dim=-1))

    class EmbedTokens(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = lm.get_input_embeddings()

        def forward(self, input_ids):
            return self.embed(input_ids)

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm, self.head = lm, head

        def forward(self, inputs_embeds, attention_mask, position_ids, *past):
            cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(num_layers)],
                                 config=self.lm.config)
            out = self.lm(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                          position_ids=position_ids, past_key_values=cache, use_cache=True)
            present = []
            for layer in out.past_key_values.layers:
                present += [layer.keys, layer.values]
            return (self.head(out.last_hidden_state), *present)

    return VisionEncoder().eval(), EmbedTokens().eval(), Decoder().eval()


def kv_names(num_layers: int) -> tuple[list[str], list[str]]:
    """Names of the decoder's past inputs and present outputs, in graph order."""
    past = [f"past_key_values.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]
    return past, present


def _export(module, args, path: Path, input_names, output_names, dynamic_shapes, recipe) -> None:
    import torch

    from spatial_vlm_ros.runtime.onnx_export import quiet_export

    with quiet_export(disable_torch_checks=False):
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_shapes=dynamic_shapes, dynamo=True, opset_version=recipe.opset,
                          external_data=True, optimize=recipe.optimize, verbose=False)


def export_model(recipe: ExportRecipe) -> Path:
    """Export ``recipe.model`` to ``recipe.output``; returns the output directory. See the module doc."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    if recipe.dtype not in ("float32", "float16"):
        raise InputError(f"export dtype must be float32 or float16, got {recipe.dtype!r}")
    if recipe.local_files_only:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = Path(recipe.output)
    out.mkdir(parents=True, exist_ok=True)
    kwargs = {"local_files_only": recipe.local_files_only}
    family = AutoConfig.from_pretrained(recipe.model, **kwargs).model_type
    if family not in SUPPORTED_EXPORT_FAMILIES:
        raise InputError(f"ONNX export supports {SUPPORTED_EXPORT_FAMILIES}, not {family!r}; "
                         "use the transformers backend for this model")
    processor = AutoProcessor.from_pretrained(recipe.model, **kwargs)
    model = AutoModelForImageTextToText.from_pretrained(
        recipe.model, dtype=torch.float32, use_safetensors=True, attn_implementation="eager", **kwargs).eval()
    tokenizer = getattr(processor, "tokenizer", processor)
    applied = apply_interventions(model, InterventionConfig(vision_layer=recipe.vision_layer))
    stats = text_norm_stats(model.get_input_embeddings().weight, tokenizer.all_special_ids)
    dtype = getattr(torch, recipe.dtype)
    model = model.to(dtype)

    text_cfg = model.config.text_config
    n_layers = text_cfg.num_hidden_layers
    kv_heads = getattr(text_cfg, "num_key_value_heads", None) or text_cfg.num_attention_heads
    head_dim = getattr(text_cfg, "head_dim", None) or text_cfg.hidden_size // text_cfg.num_attention_heads
    hidden = text_cfg.hidden_size
    vision, embed, decoder = _wrappers(model, n_layers)
    size = model.config.vision_config.image_size
    batch = torch.export.Dim("batch", min=1, max=64)
    seq = torch.export.Dim("sequence", min=1, max=32768)
    past_len = torch.export.Dim("past_sequence", min=0, max=32768)
    total = torch.export.Dim("total_sequence", min=1, max=65536)
    past_names, present_names = kv_names(n_layers)

    with torch.no_grad():
        pixels = torch.randn(2, 3, size, size, dtype=dtype)
        _export(vision, (pixels,), out / VISION_FILE, ["pixel_values"], ["image_features"],
                ({0: batch},), recipe)
        ids = torch.zeros(2, 5, dtype=torch.int64)
        _export(embed, (ids,), out / EMBED_FILE, ["input_ids"], ["inputs_embeds"], ({0: batch, 1: seq},),
                recipe)
        s, p = 5, 3
        past = tuple(torch.randn(2, kv_heads, p, head_dim, dtype=dtype) for _ in past_names)
        args = (torch.randn(2, s, hidden, dtype=dtype), torch.ones(2, p + s, dtype=torch.int64),
                torch.arange(p, p + s).repeat(2, 1), *past)
        shapes = ({0: batch, 1: seq}, {0: batch, 1: total}, {0: batch, 1: seq},
                  tuple({0: batch, 2: past_len} for _ in past))
        names_in = ["inputs_embeds", "attention_mask", "position_ids", *past_names]
        _export(decoder, args, out / DECODER_FILE, names_in, ["logits", *present_names], shapes, recipe)

    eos = model.generation_config.eos_token_id
    meta = {
        "family": family, "dtype": recipe.dtype, "opset": recipe.opset, "source_model": recipe.model,
        "num_layers": n_layers, "num_kv_heads": kv_heads, "head_dim": head_dim, "hidden_size": hidden,
        "vocab_size": text_cfg.vocab_size, "image_size": size,
        "image_token_id": model.config.image_token_id,
        "eos_token_ids": sorted(set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}),
        "pad_token_id": tokenizer.pad_token_id,
        "vision_layer": applied.get("vision_layer", model.config.vision_feature_layer),
        "vision_layer_requested": recipe.vision_layer,
        "text_norm_stats": {"mean": stats.mean, "std": stats.std},
        "past_names": past_names, "present_names": present_names,
        "recipe": asdict(recipe), "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    processor.save_pretrained(out)
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    log.info("exported %s (%s) to %s", recipe.model, family, out)
    return out


def main(argv=None) -> int:
    """CLI: ``python -m spatial_vlm_ros.vlm.onnx_export --config models/export.yaml [--model ID] [--output DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="export recipe YAML (models/export.yaml)")
    parser.add_argument("--model", help="hub id or local directory (overrides the recipe)")
    parser.add_argument("--output", help="output directory (overrides the recipe)")
    parser.add_argument("--dtype", choices=["float32", "float16"])
    parser.add_argument("--vision-layer", type=int)
    parser.add_argument("--opset", type=int)
    parser.add_argument("--allow-download", action="store_true",
                        help="let transformers fetch the model from the hub (default: local files only)")
    a = parser.parse_args(argv)
    overrides = dict(model=a.model, output=a.output, dtype=a.dtype, vision_layer=a.vision_layer, opset=a.opset,
                     local_files_only=False if a.allow_download else None)
    logging.basicConfig(level=logging.INFO)
    try:
        if a.config:
            recipe = ExportRecipe.from_yaml(a.config, **overrides)
        else:
            if not (a.model and a.output):
                parser.error("give --config or both --model and --output")
            recipe = ExportRecipe(**{k: v for k, v in overrides.items() if v is not None})
        print(export_model(recipe))
    except InputError as err:
        print(f"error: {err}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

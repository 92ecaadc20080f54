"""Export a Hugging Face VLM to ONNX as split graphs: vision encoder (+ projector), token embedding and a
text decoder with a KV cache. ``export_model`` picks the family's exporter from ``config.model_type``.

Families (:data:`EXPORTERS`, imported lazily): ``llava`` (this module: any CLIP/SigLIP-style tower with a
fixed input size, the LLaVA projector and a decoder-only language model with a ``DynamicCache``, e.g.
Llama, Mistral, Qwen2); ``idefics3`` / ``smolvlm`` (:mod:`spatial_vlm_ros.vlm.export_idefics3`: image
tiles); ``qwen2_vl`` / ``qwen2_5_vl`` / ``qwen3_vl`` (:mod:`spatial_vlm_ros.vlm.export_qwen_vl`).

Artifacts written to the output directory (the layout the ONNX engines load, similar to the onnx-community
VLM exports)::

    vision_encoder.onnx          pixel_values (B, 3, H, W) -> image_features (B, N, hidden)
    embed_tokens.onnx            input_ids (B, S) int64 -> inputs_embeds (B, S, hidden)
    decoder_model_merged.onnx    inputs_embeds (B, S, hidden), attention_mask (B, P + S) int64,
                                 position_ids (B, S) int64, past_key_values.{i}.key/value (B, kv, P, d)
                                 -> logits (B, S, vocab), present.{i}.key/value (B, kv, P + S, d)
    export_meta.json             family (selects the runtime class), dtype, dims, special ids, vision
                                 layer, text-norm statistics
    processor / tokenizer files  (the processor's ``save_pretrained``), config.json, generation_config.json

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
from spatial_vlm_ros.vlm.engine import load_processor, model_type
from spatial_vlm_ros.vlm.interventions import InterventionConfig, apply_interventions, text_norm_stats
from spatial_vlm_ros.vlm.registry import resolve_family

log = logging.getLogger(__name__)

VISION_FILE = "vision_encoder.onnx"
EMBED_FILE = "embed_tokens.onnx"
DECODER_FILE = "decoder_model_merged.onnx"
META_FILE = "export_meta.json"

_QWEN_EXPORT = "spatial_vlm_ros.vlm.export_qwen_vl:export_qwen_vl"
_IDEFICS3_EXPORT = "spatial_vlm_ros.vlm.export_idefics3:export_idefics3"
#: model_type -> ``"module:function"`` of its exporter, ``function(recipe: ExportRecipe) -> Path``.
EXPORTERS = {
    "llava": "spatial_vlm_ros.vlm.onnx_export:export_llava",
    "idefics3": _IDEFICS3_EXPORT,
    "smolvlm": _IDEFICS3_EXPORT,
    "qwen2_vl": _QWEN_EXPORT,
    "qwen2_5_vl": _QWEN_EXPORT,
    "qwen3_vl": _QWEN_EXPORT,
}


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
    def from_yaml(cls, path: str | Path, **overrides) -> ExportRecipe:
        import yaml

        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
        data = {**data.get("export", data), **{k: v for k, v in overrides.items() if v is not None}}
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InputError(f"unknown export recipe keys: {sorted(unknown)}")
        return cls(**data)


def export_model(recipe: ExportRecipe) -> Path:
    """Export ``recipe.model`` to ``recipe.output`` with its family's exporter; returns the output directory.

    Raises InputError for a bad dtype, an unreadable model or an unsupported family.
    """
    if recipe.dtype not in ("float32", "float16"):
        raise InputError(f"export dtype must be float32 or float16, got {recipe.dtype!r}")
    if recipe.local_files_only:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    family = model_type(recipe.model, recipe.local_files_only)
    exporter = resolve_family(EXPORTERS, family, "ONNX export")
    out = exporter(recipe)
    log.info("exported %s (%s) to %s", recipe.model, family, out)
    return out


# -- shared steps of every exporter --------------------------------------------------------------------------
@dataclass
class LoadedModel:
    """A model loaded for export: eval mode, eager attention, interventions applied, cast to ``dtype``."""

    model: object
    processor: object
    family: str
    dtype: object                    # torch dtype of the graphs
    applied: dict                    # what apply_interventions did
    norm_stats: object               # text-embedding norm statistics (before the cast)
    out: Path

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)


def load_for_export(recipe: ExportRecipe) -> LoadedModel:
    """Load ``recipe.model`` (safetensors, float32, eager attention), apply the vision-layer intervention and
    cast to the recipe's dtype; creates the output directory."""
    import torch
    from transformers import AutoModelForImageTextToText

    kwargs = {"local_files_only": recipe.local_files_only}
    processor = load_processor(recipe.model, **kwargs)
    model = AutoModelForImageTextToText.from_pretrained(
        recipe.model, dtype=torch.float32, use_safetensors=True, attn_implementation="eager", **kwargs).eval()
    tokenizer = getattr(processor, "tokenizer", processor)
    applied = apply_interventions(model, InterventionConfig(vision_layer=recipe.vision_layer))
    stats = text_norm_stats(model.get_input_embeddings().weight, tokenizer.all_special_ids)
    dtype = getattr(torch, recipe.dtype)
    out = Path(recipe.output)
    out.mkdir(parents=True, exist_ok=True)
    return LoadedModel(model.to(dtype), processor, model.config.model_type, dtype, applied, stats, out)


def export_graph(module, args, path: Path, input_names, output_names, dynamic_shapes,
                 recipe: ExportRecipe) -> None:
    """``torch.onnx.export(dynamo=True)`` of ``module(*args)`` with external weights, exporter chatter off."""
    import torch

    from spatial_vlm_ros.runtime.onnx_export import quiet_export

    with quiet_export(disable_torch_checks=False):
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          dynamic_shapes=dynamic_shapes, dynamo=True, opset_version=recipe.opset,
                          external_data=True, optimize=recipe.optimize, verbose=False)


def kv_names(num_layers: int) -> tuple[list[str], list[str]]:
    """Names of the decoder's past inputs and present outputs, in graph order."""
    past = [f"past_key_values.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]
    return past, present


def _text_wrappers(lm, head, num_layers: int):
    """torch modules with flat tensor signatures for the embedding and decoder graphs."""
    import torch
    from transformers import DynamicCache

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

    return EmbedTokens().eval(), Decoder().eval()


def export_text_graphs(loaded: LoadedModel, lm, head, text_cfg, recipe: ExportRecipe, rope_axes: int = 1,
                       embed_width: int | None = None) -> dict:
    """Export ``embed_tokens.onnx`` and ``decoder_model_merged.onnx`` of the language model ``lm`` (a
    decoder-only model taking ``inputs_embeds`` and a ``DynamicCache``) with the output ``head``; returns
    their export_meta.json entries (dims, context length, KV names).

    ``rope_axes``: 1 for ``position_ids`` (B, S); 3 for M-RoPE (3, B, S) (t/h/w, Qwen-VL).
    ``embed_width``: width of ``inputs_embeds`` (default the hidden size; wider when ``lm`` unpacks extra
    channels, as Qwen3-VL's deepstack wrapper does).
    """
    import torch

    n_layers = text_cfg.num_hidden_layers
    kv_heads = getattr(text_cfg, "num_key_value_heads", None) or text_cfg.num_attention_heads
    head_dim = getattr(text_cfg, "head_dim", None) or text_cfg.hidden_size // text_cfg.num_attention_heads
    hidden, dtype = text_cfg.hidden_size, loaded.dtype
    embed, decoder = _text_wrappers(lm, head, n_layers)
    batch = torch.export.Dim("batch", min=1, max=64)
    seq = torch.export.Dim("sequence", min=1, max=32768)
    past_len = torch.export.Dim("past_sequence", min=0, max=32768)
    total = torch.export.Dim("total_sequence", min=1, max=65536)
    past_names, present_names = kv_names(n_layers)
    with torch.no_grad():
        ids = torch.zeros(2, 5, dtype=torch.int64)
        export_graph(embed, (ids,), loaded.out / EMBED_FILE, ["input_ids"], ["inputs_embeds"],
                     ({0: batch, 1: seq},), recipe)
        s, p = 5, 3
        past = tuple(torch.randn(2, kv_heads, p, head_dim, dtype=dtype) for _ in past_names)
        positions = torch.arange(p, p + s).repeat(2, 1)
        position_dims = {0: batch, 1: seq}
        if rope_axes > 1:
            positions, position_dims = positions.repeat(rope_axes, 1, 1), {1: batch, 2: seq}
        args = (torch.randn(2, s, embed_width or hidden, dtype=dtype), torch.ones(2, p + s, dtype=torch.int64),
                positions, *past)
        shapes = ({0: batch, 1: seq}, {0: batch, 1: total}, position_dims,
                  tuple({0: batch, 2: past_len} for _ in past))
        names_in = ["inputs_embeds", "attention_mask", "position_ids", *past_names]
        export_graph(decoder, args, loaded.out / DECODER_FILE, names_in, ["logits", *present_names], shapes,
                     recipe)
    return {"num_layers": n_layers, "num_kv_heads": kv_heads, "head_dim": head_dim, "hidden_size": hidden,
            "vocab_size": text_cfg.vocab_size, "max_position_embeddings": text_cfg.max_position_embeddings,
            "past_names": past_names, "present_names": present_names}


def write_export(loaded: LoadedModel, recipe: ExportRecipe, default_vision_layer: int, **family_meta) -> Path:
    """Write export_meta.json (the common fields plus ``family_meta``), the processor, config and generation
    config next to the graphs; returns the output directory."""
    import torch
    import transformers

    model, tokenizer = loaded.model, loaded.tokenizer
    eos = model.generation_config.eos_token_id
    meta = {
        "family": loaded.family, "dtype": recipe.dtype, "opset": recipe.opset, "source_model": recipe.model,
        "image_token_id": model.config.image_token_id,
        "eos_token_ids": sorted(set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}),
        "pad_token_id": tokenizer.pad_token_id,
        "vision_layer": loaded.applied.get("vision_layer", default_vision_layer),
        "vision_layer_requested": recipe.vision_layer,
        "text_norm_stats": {"mean": loaded.norm_stats.mean, "std": loaded.norm_stats.std},
        **family_meta,
        "recipe": asdict(recipe), "torch": torch.__version__, "transformers": transformers.__version__,
    }
    out = loaded.out
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    loaded.processor.save_pretrained(out)
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    return out


# -- LLaVA ---------------------------------------------------------------------------------------------------
def _llava_vision(model):
    """The vision graph's module: tower hidden states at the feature layer(s) -> projector."""
    import torch

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

    return VisionEncoder().eval()


def export_llava(recipe: ExportRecipe) -> Path:
    """Export a ``LlavaForConditionalGeneration`` (see the module doc)."""
    import torch

    loaded = load_for_export(recipe)
    model = loaded.model
    size = model.config.vision_config.image_size
    with torch.no_grad():
        pixels = torch.randn(2, 3, size, size, dtype=loaded.dtype)
        export_graph(_llava_vision(model), (pixels,), loaded.out / VISION_FILE, ["pixel_values"],
                     ["image_features"], ({0: torch.export.Dim("batch", min=1, max=64)},), recipe)
    text = export_text_graphs(loaded, model.model.language_model, model.lm_head, model.config.text_config, recipe)
    return write_export(loaded, recipe, model.config.vision_feature_layer, image_size=size, **text)


def main(argv=None) -> int:
    """CLI: ``spatial_vlm export-onnx --model ID_OR_DIR --out DIR`` or ``--config models/export.yaml``."""
    parser = argparse.ArgumentParser(prog="spatial_vlm export-onnx", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="export recipe YAML (models/export.yaml)")
    parser.add_argument("--model", help="hub id or local directory (overrides the recipe)")
    parser.add_argument("--out", "--output", dest="output", help="output directory (overrides the recipe)")
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
                parser.error("give --config or both --model and --out")
            recipe = ExportRecipe(**{k: v for k, v in overrides.items() if v is not None})
        print(export_model(recipe))
    except InputError as err:
        print(f"error: {err}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""ONNX export of the Qwen2-VL family (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) as split graphs, like the LLaVA export.

Pre-processing is the image-only processor of :mod:`spatial_vlm_ros.vlm.qwen_vl_processor` (no
torchvision): ``pixel_values (N, C * T * P * P)`` (N patches of all images), ``image_grid_thw (n_images, 3)``.

Artifacts (the layout :class:`~spatial_vlm_ros.vlm.onnx_qwen_vl.QwenVLOnnxEngine` loads)::

    vision_encoder.onnx          pixel_values (N, C*T*P*P), vision_position_ids (N, 2) int64,
                                 cu_seqlens (n_images + 1,) int32,
                                 [Qwen2.5-VL] window_index (N / 4,) int64, cu_window_seqlens (W + 1,) int32,
                                 [Qwen3-VL] interp_indices (N, 4) int64, interp_weights (N, 4)
                                 -> image_features (N / 4, (1 + D) * hidden)
    embed_tokens.onnx            input_ids (B, S) int64 -> inputs_embeds (B, S, (1 + D) * hidden)
    decoder_model_merged.onnx    inputs_embeds (B, S, (1 + D) * hidden), attention_mask (B, P + S) int64,
                                 position_ids (3, B, S) int64 (M-RoPE t/h/w), past_key_values.{i}.key/value
                                 -> logits (B, S, vocab), present.{i}.key/value
    export_meta.json             as the LLaVA export, plus the vision grid settings (``vision``)

The vision side inputs (rotary positions, image and window boundaries, position-embedding interpolation)
depend on the grid through Python loops, so :func:`vision_graph_inputs` computes them outside the graph with
the helpers transformers itself uses (``transformers.vision_utils``). Inside the graph each vision attention
layer attends over all patches at once under a block-diagonal mask built from ``cu_seqlens`` /
``cu_window_seqlens`` (transformers splits per image with ``.tolist()``, which does not export).

D is the number of Qwen3-VL deepstack layers (0 otherwise): the deepstack features of an image token ride
in extra channels of its embedding (zeros for text tokens and decode steps) and the decoder adds channel
block ``k`` to the hidden states after decoder layer ``k``, as transformers adds them at the image
positions. Everything else (dtype, KV cache, ``optimize``) is as in :mod:`spatial_vlm_ros.vlm.onnx_export`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm.engine import model_type
from spatial_vlm_ros.vlm.onnx_export import (
    VISION_FILE,
    ExportRecipe,
    export_graph,
    export_text_graphs,
    load_for_export,
    write_export,
)

QWEN_VL_FAMILIES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
#: Extra vision-graph inputs of each family, after pixel_values, vision_position_ids and cu_seqlens.
VISION_EXTRA_INPUTS = {"qwen2_vl": (), "qwen2_5_vl": ("window_index", "cu_window_seqlens"),
                       "qwen3_vl": ("interp_indices", "interp_weights")}


def vision_graph_inputs(family: str, vision: dict, grid_thw: np.ndarray) -> dict[str, np.ndarray]:
    """The vision graph's side inputs (see the module doc) for ``grid_thw (n_images, 3)``; ``vision`` is the
    export's ``meta["vision"]``. Computed with ``transformers.vision_utils``, as the model computes them."""
    import torch
    from transformers import vision_utils as vu

    grid = torch.as_tensor(np.asarray(grid_thw, dtype=np.int64))
    merge = vision["spatial_merge_size"]
    feeds = {"vision_position_ids": vu.get_vision_position_ids(grid, merge),
             "cu_seqlens": vu.get_vision_cu_seqlens(grid)}
    if family == "qwen2_5_vl":
        feeds["window_index"], feeds["cu_window_seqlens"] = vu.get_vision_window_index(
            grid, merge, vision["window_size"], vision["patch_size"])
    elif family == "qwen3_vl":
        feeds["interp_indices"], feeds["interp_weights"] = vu.get_vision_interpolation_indices_and_weights(
            grid, vision["num_grid_per_side"], mode="bilinear", align_corners=True, spatial_merge_size=merge)
    return {k: v.numpy() for k, v in feeds.items()}


# -- graph wrappers ----------------------------------------------------------------------------------------
def _export_modules():
    import torch

    class SegmentMaskedVisionAttention(torch.nn.Module):
        """A Qwen vision attention layer over all patches at once, masked to the segments (images or windows)
        that ``cu_seqlens`` delimits; same weights and arithmetic as the wrapped layer."""

        def __init__(self, attn, apply_rotary):
            super().__init__()
            self.attn, self.apply_rotary = attn, apply_rotary

        def forward(self, hidden_states, cu_seqlens, position_embeddings=None, **kwargs):
            a, n = self.attn, hidden_states.shape[0]
            q, k, v = a.qkv(hidden_states).reshape(n, 3, a.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
            q, k = self.apply_rotary(q, k, *position_embeddings)
            ends = cu_seqlens[1:].to(torch.int64)
            segment = (torch.arange(n, device=ends.device)[:, None] >= ends[None, :]).sum(-1)
            mask = segment[:, None] == segment[None, :]
            q, k, v = (t.transpose(0, 1)[None] for t in (q, k, v))             # (1, heads, N, head_dim)
            out = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=a.scaling)
            return a.proj(out[0].transpose(0, 1).reshape(n, -1))

    class PatchProjection(torch.nn.Module):
        """The patch embedding's Conv3d (stride == kernel, one output voxel per patch) as the matrix product
        it is: the exporter's bias-less Conv3d gets a bias onnxruntime rejects."""

        def __init__(self, conv):
            super().__init__()
            self.weight, self.bias = conv.weight, conv.bias

        def forward(self, patches):                 # (N, C, T, P, P) -> (N, E, 1, 1, 1)
            out = patches.flatten(1) @ self.weight.flatten(1).T
            return (out if self.bias is None else out + self.bias)[:, :, None, None, None]

    return SegmentMaskedVisionAttention, PatchProjection


def _vision_wrapper(model, family: str):
    """The vision graph's module. Swaps the tower's patch projection and attention layers for their
    exportable equivalents in place (the model is loaded for this export only)."""
    import importlib

    import torch

    visual = model.model.visual
    rotary = importlib.import_module(type(visual).__module__).apply_rotary_pos_emb_vision
    attention, projection = _export_modules()
    visual.patch_embed.proj = projection(visual.patch_embed.proj)
    for block in visual.blocks:
        block.attn = attention(block.attn, rotary)
    extra = VISION_EXTRA_INPUTS[family]

    class VisionEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = visual

        def forward(self, pixel_values, vision_position_ids, cu_seqlens, *extra_inputs):
            out = self.visual(pixel_values, grid_thw=None, position_ids=vision_position_ids,
                              cu_seqlens=cu_seqlens, **dict(zip(extra, extra_inputs)))
            deepstack = list(getattr(out, "deepstack_features", None) or [])
            return torch.cat([out.pooler_output, *deepstack], dim=-1)

    return VisionEncoder().eval()


def _deepstack_text_model(lm, n_deepstack: int):
    """Qwen3-VL's text model taking packed embeddings (B, S, (1 + D) * hidden); see the module doc."""
    import torch

    class PackedEmbedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = lm.embed_tokens

        def forward(self, input_ids):
            x = self.embed(input_ids)
            return torch.cat([x, x.new_zeros(*x.shape[:-1], n_deepstack * x.shape[-1])], dim=-1)

    class DeepstackTextModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.config, self.packed = lm, lm.config, PackedEmbedding()
            # dense add instead of the boolean-mask scatter (zeros off the image tokens)
            lm._deepstack_process = lambda hidden, _mask, embeds: hidden + embeds.to(hidden.dtype)

        def get_input_embeddings(self):
            return self.packed

        def forward(self, inputs_embeds, **kwargs):
            x, *deepstack = inputs_embeds.chunk(1 + n_deepstack, dim=-1)
            return self.inner(inputs_embeds=x, deepstack_visual_embeds=deepstack, **kwargs)

    return DeepstackTextModel()


def _vision_meta(model, family: str) -> dict:
    vc = model.config.vision_config
    meta = {"spatial_merge_size": vc.spatial_merge_size, "patch_size": vc.patch_size,
            "temporal_patch_size": vc.temporal_patch_size, "in_channels": vc.in_channels,
            "extra_inputs": list(VISION_EXTRA_INPUTS[family]), "deepstack_layers": 0}
    if family == "qwen2_5_vl":
        meta["window_size"] = vc.window_size
    if family == "qwen3_vl":
        meta["num_grid_per_side"] = int(vc.num_position_embeddings ** 0.5)
        meta["deepstack_layers"] = len(vc.deepstack_visual_indexes)
    return meta


# -- export ------------------------------------------------------------------------------------------------
def _export_vision(loaded, family: str, vision_meta: dict, recipe: ExportRecipe) -> None:
    import torch

    unit = vision_meta["spatial_merge_size"] ** 2
    merged = torch.export.Dim("merged_patches", min=1, max=65536)
    dims = {"pixel_values": {0: unit * merged}, "vision_position_ids": {0: unit * merged},
            "cu_seqlens": {0: torch.export.Dim("images_plus_1", min=2, max=1025)},
            "window_index": {0: merged}, "cu_window_seqlens": {0: torch.export.Dim("windows_plus_1", max=65536)},
            "interp_indices": {0: unit * merged}, "interp_weights": {0: unit * merged}}
    grid = np.array([[1, 4, 4], [1, 6, 10]])           # two images; window padding on Qwen2.5-VL
    patch_dim = vision_meta["in_channels"] * vision_meta["temporal_patch_size"] * vision_meta["patch_size"] ** 2
    names = ["pixel_values", "vision_position_ids", "cu_seqlens", *vision_meta["extra_inputs"]]
    side = vision_graph_inputs(family, vision_meta, grid)
    args = [torch.randn(int(grid.prod(axis=1).sum()), patch_dim)] + [torch.from_numpy(side[n]) for n in names[1:]]
    args = tuple(a.to(loaded.dtype) if a.is_floating_point() else a for a in args)
    shapes = tuple(dims[n] for n in names[:3]) + ((tuple(dims[n] for n in names[3:]),) if names[3:] else ())
    with torch.no_grad():
        export_graph(_vision_wrapper(loaded.model, family), args, loaded.out / VISION_FILE, names,
                     ["image_features"], shapes, recipe)


def export_qwen_vl(recipe: ExportRecipe) -> Path:
    """Export a Qwen2-VL / Qwen2.5-VL / Qwen3-VL model (see the module doc); returns the output directory."""
    family = model_type(recipe.model, recipe.local_files_only)
    if family not in QWEN_VL_FAMILIES:
        raise InputError(f"export_qwen_vl exports {', '.join(QWEN_VL_FAMILIES)}, not {family!r}")
    loaded = load_for_export(recipe)
    model = loaded.model
    vision_meta = _vision_meta(model, family)
    _export_vision(loaded, family, vision_meta, recipe)
    lm, n_deep = model.model.language_model, vision_meta["deepstack_layers"]
    if n_deep:
        lm = _deepstack_text_model(lm, n_deep)
    text_cfg = model.config.text_config
    text = export_text_graphs(loaded, lm, model.lm_head, text_cfg, recipe, rope_axes=3,
                              embed_width=(1 + n_deep) * text_cfg.hidden_size)
    return write_export(loaded, recipe, model.config.vision_config.depth, vision=vision_meta, **text)

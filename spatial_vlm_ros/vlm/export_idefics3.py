"""ONNX export of Idefics3 / SmolVLM / SmolVLM2 (``Idefics3ForConditionalGeneration``,
``SmolVLMForConditionalGeneration``): the layout of :mod:`spatial_vlm_ros.vlm.onnx_export`.

``vision_encoder.onnx`` takes a batch of processor tiles, ``pixel_values`` (N, 3, S, S) with S the vision
config's ``image_size`` (the processor's ``max_image_size``), any N, and returns the connector's output
``image_features`` (N, image_seq_len, text hidden): SigLIP-style tower, post-layernorm, pixel shuffle and
projection. The embedding and decoder graphs are those of the Llama language model (``model.text_model``).
Run with :class:`~spatial_vlm_ros.vlm.onnx_idefics3.Idefics3OnnxEngine`.
"""
from __future__ import annotations

from pathlib import Path

from spatial_vlm_ros.vlm.onnx_export import (
    VISION_FILE,
    ExportRecipe,
    export_graph,
    export_text_graphs,
    load_for_export,
    write_export,
)


def _vision(model):
    """Tiles -> vision tower (no patch mask: tiles are full squares) -> connector."""
    import torch

    class VisionEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tower, self.connector = model.model.vision_model, model.model.connector

        def forward(self, pixel_values):
            return self.connector(self.tower(pixel_values=pixel_values).last_hidden_state)

    return VisionEncoder().eval()


def export_idefics3(recipe: ExportRecipe) -> Path:
    """Export an Idefics3 / SmolVLM model (see the module doc); returns the output directory."""
    import torch

    loaded = load_for_export(recipe)
    model = loaded.model
    vision_cfg = model.config.vision_config
    size = vision_cfg.image_size
    with torch.no_grad():
        tiles = torch.randn(3, 3, size, size, dtype=loaded.dtype)
        export_graph(_vision(model), (tiles,), loaded.out / VISION_FILE, ["pixel_values"], ["image_features"],
                     ({0: torch.export.Dim("tiles", min=1, max=1024)},), recipe)
    text = export_text_graphs(loaded, model.model.text_model, model.lm_head, model.config.text_config, recipe)
    return write_export(loaded, recipe, vision_cfg.num_hidden_layers, image_size=size,
                        image_seq_len=model.model.image_seq_len, scale_factor=model.config.scale_factor, **text)

"""onnxruntime engine for Idefics3 / SmolVLM / SmolVLM2 exports (:mod:`spatial_vlm_ros.vlm.export_idefics3`).

The processor splits each image into square tiles of the vision graph's size plus a global tile (their
number depends on the image's size and aspect ratio) and pads every batch row to the same tile count with
all-zero tiles. As in transformers, the padding tiles are dropped and the real ones, in batch order, go
through the vision graph; their features replace the ``<image>`` tokens in order. Real tiles are always
full squares (the processor resizes to multiples of the tile size before splitting), so the graph takes no
pixel mask. Decoding, IO binding and providers are those of :class:`~spatial_vlm_ros.vlm.onnx_engine.OnnxEngine`.
"""
from __future__ import annotations

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine


class Idefics3OnnxEngine(OnnxEngine):
    """An Idefics3 / SmolVLM export on onnxruntime (arguments as :class:`OnnxEngine`)."""

    families = ("idefics3", "smolvlm")

    def image_features(self, pixel_values: np.ndarray) -> np.ndarray:
        """(B, T, 3, S, S) processor tiles -> (N, image_seq_len, hidden) for the N non-padding tiles."""
        tiles = np.asarray(pixel_values).reshape(-1, *np.shape(pixel_values)[-3:])
        size = self.meta["image_size"]
        if tiles.shape[-2:] != (size, size):
            raise InputError(f"image tiles are {tiles.shape[-2]}x{tiles.shape[-1]} px but this export's vision "
                             f"graph takes {size}x{size}; use the processor saved with the export")
        return super().image_features(tiles[(tiles != 0).any(axis=(1, 2, 3))])

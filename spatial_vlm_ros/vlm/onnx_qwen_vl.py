"""onnxruntime backend for the Qwen2-VL family (Qwen2-VL, Qwen2.5-VL, Qwen3-VL) exported by
:mod:`spatial_vlm_ros.vlm.export_qwen_vl`.

Runs vision encoder -> image features merged into the token embeddings at the ``<|image_pad|>`` positions ->
decoder with KV cache, on the providers, IO binding and greedy loop of :class:`OnnxEngine`. The processor is
the image-only one of :mod:`~spatial_vlm_ros.vlm.qwen_vl_processor` (PIL image processor, no torchvision),
which :func:`~spatial_vlm_ros.vlm.engine.load_processor` picks for these families.

Positions are M-RoPE (t, h, w) triples computed in numpy from the prompt (:func:`mrope_positions`, the
``get_rope_index`` logic of transformers): text tokens count up on all three axes, an image's tokens take
(0, row, column) of its merged-patch grid offset by the position reached, and the text after it continues
from that offset plus the larger grid side. The engine keeps them as (B, S, 3) so that the greedy loop's
``positions[:, -1:] + 1`` continues every row from its last prompt position, which is its largest one
(transformers' ``max position + rope delta``); the decoder is fed (3, B, S).
"""
from __future__ import annotations

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm.export_qwen_vl import QWEN_VL_FAMILIES, vision_graph_inputs
from spatial_vlm_ros.vlm.interventions import rescale_to_norm
from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine


def mrope_positions(input_ids: np.ndarray, attention_mask: np.ndarray, image_grid_thw: np.ndarray | None,
                    image_token_id: int, spatial_merge_size: int) -> np.ndarray:
    """(B, S, 3) int64 M-RoPE positions of a processor batch (see the module doc); padding positions are 1.

    ``image_grid_thw (n_images, 3)`` lists the images in batch order, as the processor returns them.
    Raises InputError when the image tokens do not match the grids.
    """
    batch, seq = input_ids.shape
    positions = np.ones((batch, seq, 3), dtype=np.int64)
    grids = iter(np.asarray(image_grid_thw if image_grid_thw is not None else np.zeros((0, 3)), dtype=np.int64))
    for b in range(batch):
        valid = np.flatnonzero(attention_mask[b] > 0)
        is_image = input_ids[b, valid] == image_token_id
        rows, pos, i = [], 0, 0
        while i < len(valid):
            if is_image[i]:
                t, h, w = next(grids, (0, 0, 0))
                h, w = h // spatial_merge_size, w // spatial_merge_size
                n = t * h * w
                if n == 0 or not is_image[i:i + n].all() or len(is_image[i:i + n]) != n:
                    raise InputError("the prompt's image tokens do not match the processed images' grids")
                thw = np.stack(np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij"), axis=-1)
                rows.append(thw.reshape(-1, 3) + pos)
                pos += max(h, w)
            else:
                n = int(np.argmax(is_image[i:])) if is_image[i:].any() else len(valid) - i
                rows.append(np.repeat(np.arange(pos, pos + n)[:, None], 3, axis=1))
                pos += n
            i += n
        if rows:
            positions[b, valid] = np.concatenate(rows)
    if next(grids, None) is not None:
        raise InputError("more images than image placeholders in the prompts")
    return positions


class QwenVLOnnxEngine(OnnxEngine):
    """A Qwen2-VL / Qwen2.5-VL / Qwen3-VL export on onnxruntime; arguments as :class:`OnnxEngine`."""

    families = QWEN_VL_FAMILIES

    # -- graph calls --------------------------------------------------------------------------------------
    def image_features(self, pixel_values: np.ndarray, image_grid_thw: np.ndarray | None = None) -> np.ndarray:
        """Processor patches (N, C*T*P*P) of the images ``image_grid_thw (n, 3)`` -> (N / 4, (1 + D) * hidden)
        merged features (Qwen3-VL: deepstack features in the extra channels)."""
        if image_grid_thw is None:
            raise InputError("Qwen-VL image features need the processor's image_grid_thw")
        grid = np.asarray(image_grid_thw, dtype=np.int64)
        if grid.ndim != 2 or grid.shape[1] != 3 or int(grid.prod(axis=1).sum()) != pixel_values.shape[0]:
            raise InputError(f"image_grid_thw {grid.tolist()} does not describe {pixel_values.shape[0]} patches")
        feeds = {"pixel_values": pixel_values, **vision_graph_inputs(self.meta["family"], self.meta["vision"], grid)}
        feeds = {k: v.astype(self.float) if np.issubdtype(v.dtype, np.floating) else v for k, v in feeds.items()}
        feats = self.vision.run(None, feeds)[0]
        if self.interventions.vision_norm == "text_mean":
            hidden = self.meta["hidden_size"]
            feats[:, :hidden] = rescale_to_norm(feats[:, :hidden], self.meta["text_norm_stats"]["mean"])
        return feats

    def decode_step(self, embeds: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray, past):
        """As :meth:`OnnxEngine.decode_step` with ``position_ids`` (B, S, 3) (see the module doc)."""
        return super().decode_step(embeds, attention_mask, np.ascontiguousarray(position_ids.transpose(2, 0, 1)),
                                   past)

    # -- inputs -------------------------------------------------------------------------------------------
    def _inputs(self, texts: list[str], images: list | None, padding_side: str):
        """The processor batch; an image the processor cannot resize (e.g. aspect ratio over 200) is an
        InputError."""
        try:
            return super()._inputs(texts, images, padding_side)
        except ValueError as err:
            raise InputError(f"the image processor refused the image: {str(err).splitlines()[0]}") from None

    def _prefill_inputs(self, inputs, with_image: bool):
        """``(ids, mask, embeds, positions)`` of a processor batch; positions (B, S, 3) M-RoPE."""
        ids = np.asarray(inputs["input_ids"], dtype=np.int64)
        self.check_context(ids.shape[1])
        mask = np.asarray(inputs["attention_mask"], dtype=np.int64)
        grid = np.asarray(inputs["image_grid_thw"], dtype=np.int64) if with_image else None
        embeds = self.embeddings(ids, np.asarray(inputs["pixel_values"]) if with_image else None,
                                 image_grid_thw=grid)
        positions = mrope_positions(ids, mask, grid, self.meta["image_token_id"],
                                    self.meta["vision"]["spatial_merge_size"])
        return ids, mask, embeds, positions

"""The image-only Qwen-VL processor (Qwen2-VL, Qwen2.5-VL, Qwen3-VL), built without torchvision.

The stock ``Qwen*VLProcessor`` cannot be built without a video processor, which needs torchvision; this one
pairs the PIL image processor (``Qwen2VLImageProcessorPil``, ``AutoImageProcessor(backend="pil")``) with the
tokenizer. It returns ``pixel_values (N, C * T * P * P)`` (the N patches of all images) and
``image_grid_thw (n_images, 3)``, as the stock processor does for images.
:func:`~spatial_vlm_ros.vlm.engine.load_processor` uses :func:`load_qwen_vl_processor` for these families.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError


@lru_cache(maxsize=1)
def _image_only_processor_class():
    from transformers import Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin

    class QwenVLImageProcessor(Qwen2VLProcessor):
        """``Qwen2VLProcessor`` without its video processor; images are handled identically in Qwen2-VL,
        Qwen2.5-VL and Qwen3-VL (``<|image_pad|>`` repeated once per merged patch)."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    return QwenVLImageProcessor


def qwen_vl_processor(tokenizer, patch_size: int = 14, min_pixels: int = 56 * 56,
                      max_pixels: int = 28 * 28 * 1280, chat_template: str | None = None, image_processor=None):
    """Image-only Qwen-VL processor: ``image_processor`` (default: a ``Qwen2VLImageProcessorPil`` with
    ``patch_size`` px patches and images resized to ``min_pixels``..``max_pixels``) and ``tokenizer``."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if image_processor is None:
        image_processor = Qwen2VLImageProcessorPil(patch_size=patch_size, merge_size=2, temporal_patch_size=2,
                                                   min_pixels=min_pixels, max_pixels=max_pixels)
    return _image_only_processor_class()(image_processor=image_processor, tokenizer=tokenizer,
                                         chat_template=chat_template or tokenizer.chat_template)


def load_qwen_vl_processor(path: str | Path, local_files_only: bool = True):
    """The image-only processor of a Qwen-VL checkpoint or export directory (PIL image processor, no
    torchvision). Raises InputError if ``path`` has no tokenizer with a chat template."""
    from transformers import AutoImageProcessor, AutoTokenizer

    kwargs = {"local_files_only": local_files_only}
    tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
    template = Path(path) / "chat_template.jinja"
    chat_template = template.read_text(encoding="utf-8") if template.is_file() else tokenizer.chat_template
    if not chat_template:
        raise InputError(f"{path} has no chat template (chat_template.jinja or in the tokenizer)")
    image_processor = AutoImageProcessor.from_pretrained(path, backend="pil", **kwargs)
    return qwen_vl_processor(tokenizer, chat_template=chat_template, image_processor=image_processor)

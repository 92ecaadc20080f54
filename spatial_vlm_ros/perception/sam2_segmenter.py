"""SAM 2 box-prompted masks (transformers ``Sam2Model``): a ``BoxSegmenter`` for ``detector: open_vocab``.

The image is encoded once per frame (resized to the model's square input, ImageNet-normalised, as
``Sam2ImageProcessor`` does, here in numpy/OpenCV because that processor needs torchvision), then every
box (pixels, ``Detection2D``) prompts the mask decoder; the 256x256 (at full size) low-resolution mask
logits are resized to the frame and thresholded at 0. One mask per box (``multimask_output=False``).

Backends: ``torch`` (``Sam2Model``, fp16 on CUDA) or ``onnx``: two graphs written by ``export_onnx``::

    sam2_image_encoder.onnx   pixel_values (1, 3, S, S) -> image_embeddings.0/1/2 (the FPN levels)
    sam2_mask_decoder.onnx    image_embeddings.0/1/2, input_boxes (1, N, 4) x1 y1 x2 y2 in input pixels
                              -> pred_masks (1, N, 1, s, s) logits, iou_scores (1, N, 1)

Follows the part-module protocol of ``perception.learned_parts`` (part ``segmenter``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.perception.base import BoxSegmenter, Instance

log = logging.getLogger(__name__)

PART = "segmenter"
DEFAULT_MODEL = "facebook/sam2.1-hiera-tiny"
ENCODER_FILE = "sam2_image_encoder.onnx"
DECODER_FILE = "sam2_mask_decoder.onnx"
META_FILE = "sam2_export_meta.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ONNX_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Sam2Params:
    """SAM 2 settings: model (HF id or directory), ``backend`` torch|onnx, ``onnx_dir`` (export of
    ``export_onnx``), ``device`` auto|cpu|cuda[:N], ``mask_threshold`` on the mask logits, ``min_pixels``
    (smaller masks are dropped with a warning)."""

    model: str = DEFAULT_MODEL
    backend: str = "torch"
    onnx_dir: str = ""
    device: str = "auto"
    mask_threshold: float = 0.0
    min_pixels: int = 20


def _preprocessor_config(directory: str | Path | None) -> dict:
    path = Path(directory) / PREPROCESSOR_FILE if directory else None
    if path is not None and path.is_file():
        return json.loads(path.read_text())
    return {}


def preprocess(rgb: np.ndarray, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD,
               rescale: float = 1.0 / 255.0) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (1, 3, size, size) float32: bilinear resize to the square input, rescale,
    normalise (``Sam2ImageProcessor``'s defaults)."""
    import cv2

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"SAM 2 needs an (H, W, 3) color image, got shape {rgb.shape}")
    img = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) * rescale
    img -= np.asarray(mean, np.float32)
    img /= np.asarray(std, np.float32)
    return img.transpose(2, 0, 1)[None].astype(np.float32)


def boxes_to_input(boxes: list[Detection2D], width: int, height: int, size: int) -> np.ndarray:
    """Pixel boxes clipped to the image -> (1, N, 4) x1 y1 x2 y2 in the model's square input pixels."""
    out = []
    for b in boxes:
        u0, v0, u1, v1 = b.corners()
        u0, u1 = np.clip([u0, u1], 0, width)
        v0, v1 = np.clip([v0, v1], 0, height)
        out.append([u0 * size / width, v0 * size / height, u1 * size / width, v1 * size / height])
    return np.asarray(out, np.float32).reshape(1, -1, 4)


def _input_size(config) -> int:
    size = config.vision_config.backbone_config.image_size
    return int(size[0] if isinstance(size, (list, tuple)) else size)


class Sam2Segmenter(BoxSegmenter):
    """Box-prompted SAM 2 masks (see the module doc)."""

    name = "sam2"

    def __init__(self, params: Sam2Params = Sam2Params()):
        super().__init__()
        if params.backend not in ("torch", "onnx"):
            raise InputError(f"segmenter backend must be 'torch' or 'onnx', got {params.backend!r}")
        self.params = params
        self.provider = "torch"
        if params.backend == "onnx":
            self._init_onnx()
        else:
            self._init_torch()

    # ------------------------------------------------------------------ backends
    def _init_torch(self):
        import torch
        from transformers import Sam2Model

        from spatial_vlm_ros.runtime.device import resolve_device, resolve_dtype
        from spatial_vlm_ros.runtime.loading import from_pretrained, resolve_model

        self.device = resolve_device(self.params.device)
        self.dtype = resolve_dtype("auto", self.device)
        self.model = from_pretrained(Sam2Model, self.params.model, part=PART, dtype=self.dtype).to(self.device).eval()
        self._torch = torch
        self.size = _input_size(self.model.config)
        ref = resolve_model(self.params.model, PART)
        self.prep = _preprocessor_config(ref if Path(ref).is_dir() else None)

    def _init_onnx(self):
        from spatial_vlm_ros.runtime.providers import open_session

        if not self.params.onnx_dir:
            raise InputError("segmenter backend 'onnx' needs onnx_dir (run `spatial_vlm export-onnx --part segmenter`)")
        root = Path(self.params.onnx_dir)
        if not (root / META_FILE).is_file():
            raise InputError(f"{root} holds no SAM 2 ONNX export ({META_FILE} missing); run "
                             "`spatial_vlm export-onnx --part segmenter --model ID_OR_DIR --out DIR`")
        meta = json.loads((root / META_FILE).read_text())
        self.size = int(meta["image_size"])
        device = self.params.device
        self.encoder, self.provider, _ = open_session(root / ENCODER_FILE, device=device)
        self.decoder, _, _ = open_session(root / DECODER_FILE, device=device, order=[self.provider])
        self.prep = _preprocessor_config(root)

    def _pixels(self, rgb: np.ndarray) -> np.ndarray:
        return preprocess(rgb, self.size, self.prep.get("image_mean", IMAGENET_MEAN),
                          self.prep.get("image_std", IMAGENET_STD), self.prep.get("rescale_factor", 1.0 / 255.0))

    def mask_logits(self, rgb: np.ndarray, boxes: list[Detection2D]) -> np.ndarray:
        """(N, s, s) float32 low-resolution mask logits for ``boxes`` (pixels) in ``rgb``."""
        h, w = rgb.shape[:2]
        pixels = self._pixels(rgb)
        prompt = boxes_to_input(boxes, w, h, self.size)
        if self.params.backend == "onnx":
            embeds = self.encoder.run(None, {"pixel_values": pixels})
            feed = {f"image_embeddings.{i}": e for i, e in enumerate(embeds)}
            feed["input_boxes"] = prompt
            masks = self.decoder.run(["pred_masks"], feed)[0]
        else:
            torch = self._torch
            with torch.inference_mode():
                px = torch.from_numpy(pixels).to(self.device, self.dtype)
                out = self.model(pixel_values=px, input_boxes=torch.from_numpy(prompt).to(self.device, self.dtype),
                                 multimask_output=False)
                masks = out.pred_masks.float().cpu().numpy()
        return masks[0, :, 0].astype(np.float32)

    # ------------------------------------------------------------------ BoxSegmenter
    def segment(self, rgb: np.ndarray | None, depth_m: np.ndarray, camera: CameraModel,
                gravity: GravityFrame, boxes: list[Detection2D]) -> list[Instance]:
        import cv2

        self.warnings = []
        if rgb is None:
            raise InputError("the SAM 2 segmenter needs the color image")
        if not boxes:
            return []
        h, w = rgb.shape[:2]
        inside = []
        for b in boxes:
            u0, v0, u1, v1 = b.corners()
            if min(u1, w) - max(u0, 0) < 1 or min(v1, h) - max(v0, 0) < 1:
                self.warnings.append(f"box '{b.label}' lies outside the {w}x{h} image: skipped")
            else:
                inside.append(b)
        if not inside:
            return []
        logits = self.mask_logits(rgb, inside)
        instances = []
        for k, (b, low) in enumerate(zip(inside, logits), start=1):
            full = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
            mask = full > self.params.mask_threshold
            u0, v0, u1, v1 = b.corners()        # keep the mask inside its box
            box = np.zeros_like(mask)
            rows = slice(max(0, int(np.floor(v0))), max(0, int(np.ceil(v1))))
            box[rows, max(0, int(np.floor(u0))):max(0, int(np.ceil(u1)))] = True
            mask &= box
            if int(mask.sum()) < self.params.min_pixels:
                self.warnings.append(f"box '{b.label}': SAM 2 mask has {int(mask.sum())} pixels "
                                     f"(< {self.params.min_pixels}): skipped")
                continue
            instances.append(Instance(mask, b.label, b.score, k))
        return instances


# ---------------------------------------------------------------------- part-module protocol
def tiny_config(image_size: int = 64):
    """A tiny ``Sam2Config`` (random weights; plumbing tests only): 64x64 input, 16x16 mask logits."""
    from transformers import Sam2Config

    s = int(image_size)
    return Sam2Config(
        vision_config=dict(
            backbone_config=dict(model_type="sam2_hiera_det_model", hidden_size=8, image_size=[s, s],
                                 blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[8, 16, 32, 64],
                                 num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 2, 2],
                                 global_attention_blocks=[3], window_positional_embedding_background_size=[2, 2]),
            backbone_channel_list=[64, 32, 16, 8],
            backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]], fpn_hidden_size=16),
        prompt_encoder_config=dict(hidden_size=16, image_size=s, patch_size=16, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=16, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16))


def real_size_config():
    """``Sam2Config`` of ``facebook/sam2.1-hiera-tiny`` (transformers' defaults are that model)."""
    from transformers import Sam2Config

    return Sam2Config()


def _write_preprocessor(directory: Path, size: int) -> None:
    (directory / PREPROCESSOR_FILE).write_text(json.dumps({
        "image_processor_type": "Sam2ImageProcessor", "processor_class": "Sam2Processor",
        "size": {"height": size, "width": size}, "do_resize": True, "do_rescale": True,
        "rescale_factor": 1.0 / 255.0, "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN), "image_std": list(IMAGENET_STD)}, indent=2))


def save_tiny_model(directory: str | Path, seed: int = 0) -> Path:
    """A randomly initialised tiny SAM 2 (config, model.safetensors, preprocessor_config.json)."""
    import torch
    from transformers import Sam2Model

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = tiny_config()
    Sam2Model(config).eval().save_pretrained(directory)
    _write_preprocessor(directory, _input_size(config))
    return directory


def _onnx_wrappers(model):
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sam = model

        def forward(self, pixel_values):
            return tuple(self.sam.get_image_embeddings(pixel_values))

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sam = model

        def forward(self, emb0, emb1, emb2, input_boxes):
            out = self.sam(image_embeddings=[emb0, emb1, emb2], input_boxes=input_boxes, multimask_output=False)
            return out.pred_masks, out.iou_scores

    return Encoder().eval(), Decoder().eval()


def export_onnx(model: str, out_dir: str | Path, fp16: bool = False) -> Path:
    """Export SAM 2 (HF id or directory) as the encoder and decoder graphs of the module doc."""
    import torch
    from transformers import Sam2Model

    from spatial_vlm_ros.runtime.loading import from_pretrained, resolve_model
    from spatial_vlm_ros.runtime.onnx_export import export_graph, to_fp16

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sam = from_pretrained(Sam2Model, model, part=PART, dtype=torch.float32).eval()
    size = _input_size(sam.config)
    encoder, decoder = _onnx_wrappers(sam)
    with torch.no_grad():
        pixels = torch.randn(1, 3, size, size)
        embeds = encoder(pixels)
        names = [f"image_embeddings.{i}" for i in range(len(embeds))]
        export_graph(encoder, (pixels,), out / ENCODER_FILE, ["pixel_values"], names, {})
        boxes = torch.tensor([[[0.1, 0.1, 0.6, 0.7], [0.3, 0.2, 0.9, 0.9]]]) * size
        export_graph(decoder, (*embeds, boxes), out / DECODER_FILE, names + ["input_boxes"],
                     ["pred_masks", "iou_scores"], {"input_boxes": {1: "boxes"}, "pred_masks": {1: "boxes"},
                                                    "iou_scores": {1: "boxes"}})
    if fp16:
        to_fp16(out / ENCODER_FILE)
        to_fp16(out / DECODER_FILE)
    ref = resolve_model(model, PART)
    prep = _preprocessor_config(ref if Path(ref).is_dir() else None)
    if prep:
        (out / PREPROCESSOR_FILE).write_text(json.dumps(prep, indent=2))
    else:
        _write_preprocessor(out, size)
    (out / META_FILE).write_text(json.dumps({"part": PART, "source_model": str(model), "image_size": size,
                                             "fp16": bool(fp16), "torch": torch.__version__}, indent=2))
    return out


def check_onnx(model: str, onnx_dir: str | Path, seed: int = 0) -> float:
    """Largest absolute difference of the mask logits, PyTorch (CPU, fp32) vs onnxruntime (CPU)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    boxes = [Detection2D.from_corners("a", 0.9, 4, 6, 30, 40), Detection2D.from_corners("b", 0.8, 20, 10, 60, 44)]
    torch_seg = Sam2Segmenter(Sam2Params(model=model, device="cpu"))
    onnx_seg = Sam2Segmenter(Sam2Params(model=model, backend="onnx", onnx_dir=str(onnx_dir), device="cpu"))
    return float(np.max(np.abs(torch_seg.mask_logits(rgb, boxes) - onnx_seg.mask_logits(rgb, boxes))))

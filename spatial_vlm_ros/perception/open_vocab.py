"""``detector: open_vocab``: text-prompted boxes from a transformers zero-shot detector, masks from SAM 2 or
from depth inside each box.

Box models (``AutoModelForZeroShotObjectDetection`` + ``AutoProcessor``, HF id or local directory, loaded
offline-first with safetensors only, see ``runtime.loading``):

* Grounding DINO (``grounding-dino``, default ``IDEA-Research/grounding-dino-tiny``) and LLMDet /
  MM-Grounding-DINO (``mm-grounding-dino``): one prompt ``"a. b. c."``; a box's score for a class is the
  largest sigmoid token probability over that class's tokens; the label is the best class, kept when its
  mean token probability reaches ``text_threshold``. Boxes are normalised to the image.
* OWLv2 / OWL-ViT (``owlv2``, ``owlvit``): one text query per class, sigmoid logits per class. OWLv2 boxes
  are normalised to the image padded to a square (bottom/right), OWL-ViT boxes to the image.
* OmDet-Turbo is refused with a clear message: its processor needs torchvision, which is not installed.

Then score threshold, class-aware NMS (OpenCV) and ``max_detections``. Scores that are NaN, negative or
above 1 and non-finite boxes are dropped with a warning. The image processors used are the PIL ones
(transformers picks them when torchvision is absent; no torchvision needed).

Backends: ``torch`` (CUDA when available, fp16 there, ``torch.inference_mode``) or ``onnx``
(``export_onnx``: one graph ``detector.onnx`` with the processor's inputs -> ``logits``, ``pred_boxes``; its
image input size is fixed at export, the text length is dynamic; onnxruntime TensorRT -> CUDA -> CPU).

Pixels: u right, v down; boxes are ``core.frame.Detection2D`` (center and full size, pixels).
Follows the part-module protocol of ``perception.learned_parts`` (part ``detector``).
"""
from __future__ import annotations

import contextlib
import json
import logging
import string
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.perception.base import BoxSegmenter, Detector, Instance

log = logging.getLogger(__name__)

PART = "detector"
DEFAULT_MODEL = "IDEA-Research/grounding-dino-tiny"
DEFAULT_SAM_MODEL = "facebook/sam2.1-hiera-tiny"
GROUNDING_FAMILIES = ("grounding-dino", "mm-grounding-dino")
OWL_FAMILIES = ("owlv2", "owlvit")
ONNX_FILE = "detector.onnx"
META_FILE = "detector_export_meta.json"
EXPORT_IMAGE_HW = (480, 640)          # frame size the ONNX graph's fixed image input is made for, pixels
BACKENDS = ("torch", "onnx")
SEGMENTERS = ("auto", "sam2", "depth")


@dataclass(frozen=True)
class OpenVocabParams:
    """Settings of ``detector: open_vocab``.

    ``classes``: the phrases to detect (empty: every frame is refused until ``set_classes``).
    ``score_threshold``/``text_threshold`` in [0, 1]; ``nms_iou``: class-aware NMS overlap; ``device``
    auto|cpu|cuda[:N]; ``backend``/``onnx_dir`` for the box model; ``segmenter``: ``sam2``, ``depth`` (the
    depth box segmenter of ``detector: boxes``) or ``auto`` (sam2 when ``sam_model`` is set, else depth);
    ``sam_model`` empty = ``DEFAULT_SAM_MODEL`` when ``segmenter`` is ``sam2``.
    """

    model: str = DEFAULT_MODEL
    classes: tuple[str, ...] = ()
    score_threshold: float = 0.3
    text_threshold: float = 0.25
    nms_iou: float = 0.5
    max_detections: int = 50
    device: str = "auto"
    backend: str = "torch"
    onnx_dir: str = ""
    segmenter: str = "auto"
    sam_model: str = ""
    sam_backend: str = "torch"
    sam_onnx_dir: str = ""

    def __post_init__(self):
        if self.backend not in BACKENDS or self.sam_backend not in BACKENDS:
            raise InputError(f"open_vocab backends must be one of {BACKENDS}")
        if self.segmenter not in SEGMENTERS:
            raise InputError(f"open_vocab.segmenter must be one of {SEGMENTERS}, got {self.segmenter!r}")
        for name in ("score_threshold", "text_threshold", "nms_iou"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise InputError(f"open_vocab.{name} must be in [0, 1]")
        if int(self.max_detections) < 1:
            raise InputError("open_vocab.max_detections must be at least 1")

    @property
    def resolved_segmenter(self) -> str:
        if self.segmenter == "auto":
            return "sam2" if self.sam_model.strip() else "depth"
        return self.segmenter


def clean_classes(phrases) -> tuple[str, ...]:
    """Phrases stripped (and '.' removed: it separates Grounding DINO's phrases); InputError for an empty
    list or a blank phrase."""
    if isinstance(phrases, str):
        phrases = [phrases]
    out = []
    for p in list(phrases or []):
        text = " ".join(str(p).replace(".", " ").split())
        if not text:
            raise InputError(f"class phrases must not be blank (got {list(phrases)!r})")
        out.append(text)
    if not out:
        raise InputError("the class list is empty: give at least one phrase to detect (e.g. ['mug', 'bowl'])")
    return tuple(dict.fromkeys(out))


def select_detections(scores: np.ndarray, boxes_xyxy: np.ndarray, classes: tuple[str, ...], width: int,
                      height: int, score_threshold: float, nms_iou: float, max_detections: int,
                      keep: np.ndarray | None = None) -> tuple[list[Detection2D], list[str]]:
    """Detections from per-query class scores ``(Q, C)`` and pixel boxes ``(Q, 4)`` x1 y1 x2 y2.

    Rows with NaN/negative/>1 scores or non-finite boxes are dropped (counted in the returned warnings);
    boxes are clipped to the image, empty ones dropped; then ``score_threshold``, class-aware NMS and the
    ``max_detections`` best. ``keep`` (Q,) bool: extra per-row filter (Grounding DINO's text threshold).
    """
    import cv2

    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64)
    scores = scores.reshape(len(boxes), -1) if scores.ndim != 2 else scores
    if len(boxes) == 0 or scores.shape[1] == 0:
        return [], []
    warnings = []
    bad = ~np.isfinite(scores).all(1) | (scores < 0).any(1) | (scores > 1).any(1)
    bad_boxes = ~np.isfinite(boxes).all(1)
    if bad.any():
        warnings.append(f"{int(bad.sum())} detections with NaN or out-of-range scores dropped")
    if (bad_boxes & ~bad).any():
        warnings.append(f"{int((bad_boxes & ~bad).sum())} detections with non-finite boxes dropped")
    ok = ~bad & ~bad_boxes & (True if keep is None else np.asarray(keep, bool))
    if not ok.any() or scores.shape[1] == 0:
        return [], warnings
    label = np.where(ok, np.nan_to_num(scores).argmax(1), 0)
    best = np.where(ok, np.nan_to_num(scores).max(1), 0.0)
    boxes = np.nan_to_num(boxes)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    wh = boxes[:, 2:] - boxes[:, :2]
    ok &= (wh >= 1.0).all(1) & (best >= score_threshold)
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return [], warnings
    rects = [[float(boxes[i, 0]), float(boxes[i, 1]), float(wh[i, 0]), float(wh[i, 1])] for i in idx]
    picked = cv2.dnn.NMSBoxesBatched(rects, [float(best[i]) for i in idx], [int(label[i]) for i in idx],
                                     float(score_threshold), float(nms_iou))
    picked = idx[np.asarray(picked, int).reshape(-1)]
    picked = picked[np.argsort(-best[picked], kind="stable")][:max_detections]
    dets = []
    for i in picked:
        u_min, v_min, u_max, v_max = (float(c) for c in boxes[i])
        dets.append(Detection2D.from_corners(classes[label[i]], float(best[i]), u_min, v_min, u_max, v_max))
    return dets, warnings


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def _onnx_session(onnx_dir: str, device: str):
    from spatial_vlm_ros.runtime.providers import open_session

    root = Path(onnx_dir)
    if not (root / META_FILE).is_file():
        raise InputError(f"{root} holds no detector ONNX export ({META_FILE} missing); run "
                         "`spatial_vlm export-onnx --part detector --model ID_OR_DIR --out DIR`")
    meta = json.loads((root / META_FILE).read_text())
    session, provider, _ = open_session(root / ONNX_FILE, device=device)
    return session, provider, meta


class ZeroShotBoxDetector:
    """Text-prompted 2D boxes (see the module doc). ``detect_boxes(rgb)`` -> ``Detection2D``s."""

    def __init__(self, params: OpenVocabParams = OpenVocabParams()):
        from transformers import AutoProcessor

        from spatial_vlm_ros.runtime.loading import from_pretrained

        self.params = params
        self.classes: tuple[str, ...] = clean_classes(params.classes) if params.classes else ()
        self.warnings: list[str] = []
        self.provider = "torch"
        if params.backend == "onnx":
            if not params.onnx_dir:
                raise InputError("open_vocab backend 'onnx' needs onnx_dir (run `spatial_vlm export-onnx --part "
                                 "detector`)")
            self.session, self.provider, self.meta = _onnx_session(params.onnx_dir, params.device)
            self.family = self.meta["family"]
        else:
            import torch
            from transformers import AutoModelForZeroShotObjectDetection

            from spatial_vlm_ros.runtime.device import resolve_device, resolve_dtype

            self.device = resolve_device(params.device)
            self.dtype = resolve_dtype("auto", self.device)
            self.model = from_pretrained(AutoModelForZeroShotObjectDetection, params.model, part=PART,
                                         dtype=self.dtype).to(self.device).eval()
            self.family = self.model.config.model_type
            self._torch = torch
        if self.family not in GROUNDING_FAMILIES + OWL_FAMILIES:
            hint = " (its processor needs torchvision, which is not installed)" if "omdet" in self.family else ""
            raise InputError(f"open_vocab supports {GROUNDING_FAMILIES + OWL_FAMILIES}, not {self.family!r}{hint}")
        if params.backend == "onnx":        # the export's own processor files (no weights there)
            self.processor = AutoProcessor.from_pretrained(params.onnx_dir, local_files_only=True)
        else:
            self.processor = from_pretrained(AutoProcessor, params.model, part=PART)

    def set_classes(self, phrases) -> tuple[str, ...]:
        self.classes = clean_classes(phrases)
        return self.classes

    # ------------------------------------------------------------------ inputs / outputs
    def encode(self, rgb: np.ndarray, classes: tuple[str, ...]) -> tuple[dict, dict]:
        """Processor inputs as numpy arrays, and what post-processing needs (token spans of the classes)."""
        rgb = np.ascontiguousarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputError(f"open_vocab needs an (H, W, 3) uint8 color image, got {rgb.shape} {rgb.dtype}")
        if self.family in GROUNDING_FAMILIES:
            text = ". ".join(c.lower() for c in classes) + "."
            inputs = dict(self.processor(images=rgb, text=text, return_tensors="np"))
            enc = self.processor.tokenizer(text, return_offsets_mapping=True)
            starts, pos = [], 0
            for c in classes:
                starts.append(text.index(c.lower(), pos))
                pos = starts[-1] + len(c)
            spans = []
            for c, s in zip(classes, starts):
                toks = [t for t, (a, b) in enumerate(enc["offset_mapping"]) if b > a and a >= s and b <= s + len(c)]
                if not toks:
                    raise InputError(f"class phrase {c!r} gives no text tokens for this model")
                spans.append(toks)
            max_len = self.model.config.max_text_len if self.params.backend == "torch" else self.meta["max_text_len"]
            if inputs["input_ids"].shape[1] > max_len:
                raise InputError(f"the class prompt has {inputs['input_ids'].shape[1]} tokens, more than this "
                                 f"model's {max_len}: use fewer or shorter phrases")
            return inputs, {"spans": spans}
        inputs = dict(self.processor(text=[list(classes)], images=rgb, return_tensors="np"))
        return inputs, {}

    def forward(self, inputs: dict) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, pred_boxes)`` of one image, float32 numpy (raw model outputs)."""
        if self.params.backend == "onnx":
            names = [i.name for i in self.session.get_inputs()]
            feed = {}
            for i in self.session.get_inputs():
                value = np.asarray(inputs[i.name])
                feed[i.name] = value.astype(np.float32) if "float" in i.type else value.astype(np.int64)
            shape = tuple(self.meta.get("pixel_values_shape", ()))
            if shape and tuple(feed["pixel_values"].shape) != shape:
                raise InputError(f"the ONNX detector was exported for pixel_values {shape}, this frame gives "
                                 f"{tuple(feed['pixel_values'].shape)}: re-export with --image-size for this "
                                 "camera or use backend torch")
            logits, boxes = self.session.run(["logits", "pred_boxes"], {n: feed[n] for n in names})
            return logits[0], boxes[0]
        torch = self._torch
        with torch.inference_mode():
            tensors = {k: torch.from_numpy(np.asarray(v)).to(self.device) for k, v in inputs.items()}
            tensors = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in tensors.items()}
            out = self.model(**tensors)
            return out.logits[0].float().cpu().numpy(), out.pred_boxes[0].float().cpu().numpy()

    def scores_and_boxes(self, logits, pred_boxes, meta: dict, width: int, height: int, n_classes: int):
        """Per-query class scores ``(Q, C)``, pixel boxes ``(Q, 4)`` x1 y1 x2 y2 and the text-threshold mask."""
        probs = _sigmoid(logits)
        if self.family in GROUNDING_FAMILIES:
            spans = meta["spans"]
            scores = np.stack([probs[:, s].max(1) for s in spans], 1)
            means = np.stack([probs[:, s].mean(1) for s in spans], 1)
            best = np.nan_to_num(scores, nan=-1.0).argmax(1)
            keep = means[np.arange(len(best)), best] >= self.params.text_threshold
            scale = np.array([width, height, width, height], np.float64)
        else:
            scores, keep = probs[:, :n_classes], None
            side = max(width, height) if self.family == "owlv2" else None
            scale = np.array([side] * 4 if side else [width, height, width, height], np.float64)
        cx, cy, w, h = np.asarray(pred_boxes, np.float64).T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1) * scale
        return scores, boxes, keep

    def detect_boxes(self, rgb: np.ndarray, classes=None) -> list[Detection2D]:
        """Boxes of ``classes`` (default: the configured ones) in one (H, W, 3) uint8 RGB image."""
        classes = clean_classes(classes) if classes is not None else self.classes
        if not classes:
            raise InputError("open_vocab has no classes to detect: set the open_vocab.classes parameter or call "
                             "~/set_classes with a list of phrases")
        inputs, meta = self.encode(rgb, classes)
        logits, pred_boxes = self.forward(inputs)
        h, w = rgb.shape[:2]
        scores, boxes, keep = self.scores_and_boxes(logits, pred_boxes, meta, w, h, len(classes))
        dets, self.warnings = select_detections(scores, boxes, classes, w, h, self.params.score_threshold,
                                                self.params.nms_iou, self.params.max_detections, keep)
        return dets


class OpenVocabDetector(Detector):
    """Boxes from ``ZeroShotBoxDetector``, masks from a ``BoxSegmenter`` (SAM 2 or depth inside each box)."""

    name = "open_vocab"

    def __init__(self, params: OpenVocabParams = OpenVocabParams(), depth_box_params=None,
                 box_detector: ZeroShotBoxDetector | None = None, segmenter: BoxSegmenter | None = None):
        self.params = params
        self.boxes = box_detector or ZeroShotBoxDetector(params)
        self.segmenter = segmenter or self._make_segmenter(params, depth_box_params)
        self.warnings: list[str] = []
        self.last_boxes: list[Detection2D] = []

    @staticmethod
    def _make_segmenter(params: OpenVocabParams, depth_box_params) -> BoxSegmenter:
        if params.resolved_segmenter == "sam2":
            from spatial_vlm_ros.perception.sam2_segmenter import Sam2Params, Sam2Segmenter

            return Sam2Segmenter(Sam2Params(model=params.sam_model.strip() or DEFAULT_SAM_MODEL,
                                            backend=params.sam_backend, onnx_dir=params.sam_onnx_dir,
                                            device=params.device))
        from spatial_vlm_ros.perception.box_segmenter import DepthBoxParams, DepthBoxSegmenter

        return DepthBoxSegmenter(depth_box_params if depth_box_params is not None else DepthBoxParams())

    @property
    def classes(self) -> tuple[str, ...]:
        return self.boxes.classes

    def set_classes(self, phrases) -> tuple[str, ...]:
        """Replace the phrases to detect (the ``~/set_classes`` service); InputError for an empty list or a
        blank phrase (the previous classes stay)."""
        return self.boxes.set_classes(phrases)

    def detect(self, rgb: np.ndarray | None, depth_m: np.ndarray, camera: CameraModel,
               gravity: GravityFrame, boxes: list[Detection2D] | None = None) -> list[Instance]:
        if rgb is None:
            raise InputError("detector open_vocab needs the color image")
        self.last_boxes = self.boxes.detect_boxes(rgb)
        self.warnings = list(self.boxes.warnings)
        if not self.last_boxes:
            return []
        instances = self.segmenter.segment(rgb, depth_m, camera, gravity, self.last_boxes)
        self.warnings += list(getattr(self.segmenter, "warnings", []))
        return instances


# ---------------------------------------------------------------------- part-module protocol
TINY_IMAGE_EDGES = (64, 96)      # shortest/longest edge of the tiny processor, pixels


def tiny_tokenizer():
    """A BERT WordPiece tokenizer over single characters (lower-case letters, digits, '.', ','), offline."""
    from transformers import BertTokenizer

    chars = string.ascii_lowercase + string.digits
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "-"] + list(chars) + ["##" + c for c in chars]
    return BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)


def tiny_config():
    """A tiny ``GroundingDinoConfig`` (random weights; plumbing tests only)."""
    from transformers import GroundingDinoConfig

    return GroundingDinoConfig(
        backbone_config=dict(model_type="swin", embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                             window_size=4, image_size=64, out_indices=[2, 3, 4],
                             out_features=["stage2", "stage3", "stage4"]),
        text_config=dict(model_type="bert", hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, vocab_size=len(tiny_tokenizer()), max_position_embeddings=64),
        num_queries=20, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64, d_model=32,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_n_points=2, decoder_n_points=2,
        max_text_len=32, num_feature_levels=4)


def real_size_config():
    """``GroundingDinoConfig`` of ``IDEA-Research/grounding-dino-tiny`` (Swin-T backbone, BERT-base text
    encoder, 900 queries, 6+6 layers, d_model 256: transformers' defaults are that model)."""
    from transformers import GroundingDinoConfig

    return GroundingDinoConfig()


def save_tiny_model(directory: str | Path, seed: int = 0) -> Path:
    """A randomly initialised tiny Grounding DINO with its processor (PIL image processor, character-level
    BERT tokenizer) in ``directory``: config.json, model.safetensors, processor files."""
    import torch
    from transformers import GroundingDinoForObjectDetection, GroundingDinoImageProcessorPil, GroundingDinoProcessor

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    GroundingDinoForObjectDetection(tiny_config()).eval().save_pretrained(directory)
    short, long = TINY_IMAGE_EDGES
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessorPil(size={"shortest_edge": short, "longest_edge": long}),
        tokenizer=tiny_tokenizer())
    processor.save_pretrained(directory)
    return directory


def save_tiny_owlv2(directory: str | Path, seed: int = 0) -> Path:
    """A randomly initialised tiny OWLv2 (64 px input, 16 patches, byte-level CLIP tokenizer without merges)
    with its processor (PIL image processor): the OWL post-processing and export path, plumbing only."""
    import torch
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil, Owlv2Processor

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<|startoftext|>": bos, "<|endoftext|>": eos})
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    config = Owlv2Config(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         vocab_size=len(vocab), max_position_embeddings=16, bos_token_id=bos, eos_token_id=eos,
                         pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=64, patch_size=16),
        projection_dim=32)
    torch.manual_seed(seed)
    Owlv2ForObjectDetection(config).eval().save_pretrained(directory)
    Owlv2Processor(image_processor=Owlv2ImageProcessorPil(size={"height": 64, "width": 64}),
                   tokenizer=tokenizer).save_pretrained(directory)
    return directory


def _onnx_text_masks(input_ids, special_tokens):
    """Grounding DINO's phrase masks and position ids (``generate_masks_with_special_tokens_and_transfer_map``)
    with pairwise comparisons instead of isin/cummax/cummin/eye-bool, which do not export to ONNX."""
    import torch

    batch, seq_len = input_ids.shape
    device = input_ids.device
    special = (input_ids.unsqueeze(-1) == special_tokens.to(device)).any(-1)
    idx = torch.arange(seq_len, device=device)
    i, j = idx.view(1, -1, 1), idx.view(1, 1, -1)
    cand = special.unsqueeze(1)
    prev_special = torch.where(cand & (j < i), j, torch.full((), -1, device=device)).amax(-1)
    next_special = torch.where(cand & (j >= i), j, torch.full((), seq_len, device=device)).amin(-1)
    valid = (next_special != 0) & (next_special != seq_len - 1) & (next_special != seq_len)
    mask = ((next_special.unsqueeze(2) == next_special.unsqueeze(1)) & valid.unsqueeze(1)) | (i == j)
    position_ids = torch.where(valid, idx.unsqueeze(0) - prev_special - 1, torch.zeros_like(prev_special))
    return mask.expand(batch, -1, -1), torch.clamp(position_ids, min=0).to(torch.long)


@contextmanager
def _exportable_grounding_dino():
    import importlib

    modules = []
    for name in ("grounding_dino.modeling_grounding_dino", "mm_grounding_dino.modeling_mm_grounding_dino"):
        with contextlib.suppress(ImportError):
            modules.append(importlib.import_module(f"transformers.models.{name}"))
    attr = "generate_masks_with_special_tokens_and_transfer_map"
    saved = [(m, getattr(m, attr)) for m in modules if hasattr(m, attr)]
    for m, _ in saved:
        setattr(m, attr, _onnx_text_masks)
    try:
        yield
    finally:
        for m, fn in saved:
            setattr(m, attr, fn)


def export_onnx(model: str, out_dir: str | Path, fp16: bool = False, image_hw: tuple[int, int] = EXPORT_IMAGE_HW
                ) -> Path:
    """Export the box model (HF id or directory) to ``out_dir/detector.onnx`` plus processor files and
    ``detector_export_meta.json``. The image input is fixed to what the processor makes of an
    ``image_hw`` (pixels) frame; the text length (Grounding DINO) or class count (OWL) stays dynamic."""
    import torch
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    from spatial_vlm_ros.runtime.loading import from_pretrained
    from spatial_vlm_ros.runtime.onnx_export import export_graph, to_fp16

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = from_pretrained(AutoModelForZeroShotObjectDetection, model, part=PART, dtype=torch.float32).eval()
    processor = from_pretrained(AutoProcessor, model, part=PART)
    family = net.config.model_type
    if family not in GROUNDING_FAMILIES + OWL_FAMILIES:
        raise InputError(f"ONNX export supports {GROUNDING_FAMILIES + OWL_FAMILIES}, not {family!r}")
    rgb = np.random.default_rng(0).integers(0, 256, (*image_hw, 3), dtype=np.uint8)
    if family in GROUNDING_FAMILIES:
        inputs = dict(processor(images=rgb, text="a cat. a remote control.", return_tensors="pt"))
        axes = {n: {1: "text"} for n in ("input_ids", "token_type_ids", "attention_mask")}
        dynamo = True                          # tracing bakes the text masks in; torch.export does not
    else:
        inputs = dict(processor(text=[["a cat", "a remote control"]], images=rgb, return_tensors="pt"))
        axes = {n: {0: "classes"} for n in ("input_ids", "attention_mask")}
        axes.update(logits={2: "classes"})
        dynamo = False

    class Grounding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, pixel_values, pixel_mask, input_ids, token_type_ids, attention_mask):
            o = self.net(pixel_values=pixel_values, pixel_mask=pixel_mask, input_ids=input_ids,
                         token_type_ids=token_type_ids, attention_mask=attention_mask)
            return o.logits, o.pred_boxes

    class Owl(Grounding):
        def forward(self, input_ids, attention_mask, pixel_values):
            o = self.net(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values)
            return o.logits, o.pred_boxes

    names = ["pixel_values", "pixel_mask", "input_ids", "token_type_ids", "attention_mask"] if dynamo else \
        ["input_ids", "attention_mask", "pixel_values"]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise InputError(f"the processor of {model!r} does not give the inputs {missing}")
    wrapper = (Grounding() if dynamo else Owl()).eval()
    args = tuple(inputs[n] for n in names)
    with torch.no_grad(), _exportable_grounding_dino():
        export_graph(wrapper, args, out / ONNX_FILE, names, ["logits", "pred_boxes"], axes, dynamo=dynamo)
    if fp16:
        to_fp16(out / ONNX_FILE)
    processor.save_pretrained(out)
    net.config.save_pretrained(out)
    meta = {"part": PART, "family": family, "source_model": str(model), "fp16": bool(fp16), "inputs": names,
            "pixel_values_shape": list(inputs["pixel_values"].shape), "image_hw": list(image_hw),
            "max_text_len": int(getattr(net.config, "max_text_len", 0) or 0), "torch": torch.__version__}
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    return out


def check_onnx(model: str, onnx_dir: str | Path, seed: int = 0) -> float:
    """Largest absolute difference of logits and boxes, PyTorch (CPU, fp32) vs onnxruntime (CPU), on one
    random frame of the exported size (masked text positions, -inf in both, count as equal)."""
    from spatial_vlm_ros.runtime.onnx_export import max_abs_diff

    meta = json.loads((Path(onnx_dir) / META_FILE).read_text())
    rgb = np.random.default_rng(seed).integers(0, 256, (*meta["image_hw"], 3), dtype=np.uint8)
    classes = ("mug", "red bowl", "box")
    ref = ZeroShotBoxDetector(OpenVocabParams(model=model, device="cpu", classes=classes))
    onx = ZeroShotBoxDetector(OpenVocabParams(model=model, device="cpu", classes=classes, backend="onnx",
                                              onnx_dir=str(onnx_dir)))
    a = ref.forward(ref.encode(rgb, classes)[0])
    b = onx.forward(onx.encode(rgb, classes)[0])
    return max(max_abs_diff(x, y) for x, y in zip(a, b))

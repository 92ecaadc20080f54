"""The vision-language engine interface shared by every backend, and its request/result types.

An engine takes an RGB image (optionally a depth image, 2D object boxes and measured 3D scene facts) and a
question, and returns answer text, optionally with per-token log-probabilities. Requests are batched;
decoding is greedy (deterministic) unless a temperature above zero is asked for.

Backends: :class:`~spatial_vlm_ros.vlm.transformers_engine.TransformersEngine` (PyTorch, any Hugging Face
image-text-to-text model) and the ONNX engines (onnxruntime, models exported by
:mod:`spatial_vlm_ros.vlm.onnx_export`; the export's family picks the class, see
:func:`~spatial_vlm_ros.vlm.onnx_engine.open_onnx_engine`). Use :func:`load_engine` to build one from
settings and :func:`load_processor` for a model's pre-processing.
"""
from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm import grounding

#: Prompt under which What's Up captions are scored (log-likelihood of the caption as the answer).
CAPTION_PROMPT = "Describe the image in one sentence."


@dataclass(frozen=True)
class ObjectBox:
    """A detected object in the image: label and pixel box ``(u_min, v_min, u_max, v_max)`` (inclusive)."""

    label: str
    bbox: tuple[int, int, int, int]


@dataclass(frozen=True)
class VLMRequest:
    """One question about one image.

    ``image``: (H, W, 3) uint8 RGB, or None for a text-only question.
    ``depth``: (H, W) float depth in metres (NaN/0 = invalid), same size as ``image``; used with ``boxes``.
    ``boxes``: detected objects; with ``depth`` each gets its median depth in the prompt.
    ``facts``: measured scene facts, e.g. :func:`spatial_vlm_ros.vlm.grounding.scene_facts` of the memory.
    """

    question: str
    image: np.ndarray | None = None
    depth: np.ndarray | None = None
    boxes: tuple[ObjectBox, ...] = ()
    facts: str = ""

    def validate(self) -> None:
        """Raise :class:`InputError` with a user-facing message if the request cannot be served."""
        if not isinstance(self.question, str) or not self.question.strip():
            raise InputError("the question is empty")
        if self.image is not None:
            img = np.asarray(self.image)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
                raise InputError(f"image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        if self.depth is not None:
            if self.image is None:
                raise InputError("a depth image was given without a color image")
            if np.asarray(self.depth).shape != np.asarray(self.image).shape[:2]:
                raise InputError(f"depth {np.asarray(self.depth).shape} and image "
                                 f"{np.asarray(self.image).shape[:2]} sizes differ")

    def user_text(self) -> str:
        """The text part of the user turn: scene facts, object boxes (with depth), then the question."""
        parts = []
        if self.facts:
            parts.append(self.facts.strip())
        if self.boxes:
            parts.append(grounding.box_facts(self.boxes, self.depth))
        parts.append(self.question.strip())
        return "\n".join(parts)


@dataclass(frozen=True)
class GenerationOptions:
    """Decoding settings. ``temperature == 0`` is greedy decoding (deterministic)."""

    max_new_tokens: int = 64
    return_logprobs: bool = False
    temperature: float = 0.0
    seed: int = 0

    def validate(self) -> None:
        if self.max_new_tokens < 1:
            raise InputError("max_new_tokens must be at least 1")
        if self.temperature < 0 or not np.isfinite(self.temperature):
            raise InputError("temperature must be finite and >= 0")


@dataclass(frozen=True)
class VLMAnswer:
    """Generated answer. ``token_logprobs`` (natural log, one per generated token) only when asked for."""

    text: str
    token_ids: tuple[int, ...]
    prompt_tokens: int
    finish_reason: str                       # "eos" or "length"
    token_logprobs: tuple[float, ...] | None = field(default=None)


class VLMEngine(abc.ABC):
    """A loaded vision-language model. Not thread-safe: serve it from one worker thread."""

    backend: str = ""
    model_name: str = ""

    @abc.abstractmethod
    def generate(self, requests: Sequence[VLMRequest],
                 options: GenerationOptions = GenerationOptions()) -> list[VLMAnswer]:
        """Answer a batch of requests (all with an image, or all without). Raises InputError on bad input."""

    @abc.abstractmethod
    def score_captions(self, image: np.ndarray, captions: Sequence[str],
                       prompt: str = CAPTION_PROMPT) -> np.ndarray:
        """Log-likelihood (nats, summed over tokens) of each caption as the answer to ``prompt``."""

    def answer(self, request: VLMRequest, options: GenerationOptions = GenerationOptions()) -> VLMAnswer:
        """Answer one request."""
        return self.generate([request], options)[0]

    def close(self) -> None:  # noqa: B027 - an optional hook: an engine without resources to free keeps it
        """Release the model's memory."""


class ProcessorEngine(VLMEngine):
    """A ``VLMEngine`` whose pre-processing is a Hugging Face processor (``self.processor``, set by the
    backend): chat prompts and caption-scoring batches are built the same way in every such backend."""

    processor = None
    return_tensors = "np"                    # tensor type the processor returns ("np" or "pt")

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    def _inputs(self, texts: list[str], images: list | None, padding_side: str):
        """Processor batch of ``texts`` (with ``images``, (H, W, 3) uint8 RGB, if given), padded on
        ``padding_side``."""
        self.tokenizer.padding_side = padding_side
        kwargs = {"text": texts, "return_tensors": self.return_tensors, "padding": True}
        if images is not None:
            kwargs["images"] = [to_pil(img) for img in images]
        return self.processor(**kwargs)

    def prompt(self, request: VLMRequest) -> str:
        """The chat-formatted prompt text (with the image placeholder) for ``request``."""
        return self.processor.apply_chat_template(
            chat_messages(request.user_text(), request.image is not None), add_generation_prompt=True,
            tokenize=False)

    def _request_inputs(self, requests: Sequence[VLMRequest], options: GenerationOptions):
        """``(inputs, with_image)``: the validated batch's prompts (and images), left-padded for generation."""
        with_image = check_batch(requests, options)
        inputs = self._inputs([self.prompt(r) for r in requests],
                              [r.image for r in requests] if with_image else None, padding_side="left")
        return inputs, with_image

    def _caption_inputs(self, image: np.ndarray, captions: Sequence[str], prompt: str):
        """``(inputs, n_head)`` for ``score_captions``: the prompt followed by each caption, right-padded (so
        every row's positions are 0..n-1 and no family-specific position ids are needed), and the prompt's
        length in tokens. Raises InputError for no captions or a bad image."""
        if not captions:
            raise InputError("no captions to score")
        request = VLMRequest(question=prompt, image=image)
        request.validate()
        head = self.prompt(request)
        n_head = int(self._inputs([head], [image], padding_side="right")["input_ids"].shape[1])
        inputs = self._inputs([head + c for c in captions], [image] * len(captions), padding_side="right")
        return inputs, n_head


def make_answer(tokenizer, ids, logprobs, prompt_tokens: int, eos_ids) -> VLMAnswer:
    """Cut generated ``ids`` after the first end-of-sequence token and decode them into a ``VLMAnswer``."""
    ids = [int(t) for t in ids]
    finish = "length"
    for n, t in enumerate(ids):
        if t in eos_ids:
            ids, finish = ids[:n + 1], "eos"
            break
    text = tokenizer.decode(ids, skip_special_tokens=True).strip()
    lp = None if logprobs is None else tuple(float(x) for x in logprobs[:len(ids)])
    return VLMAnswer(text=text, token_ids=tuple(ids), prompt_tokens=int(prompt_tokens), finish_reason=finish,
                     token_logprobs=lp)


def check_batch(requests: Sequence[VLMRequest], options: GenerationOptions) -> bool:
    """Validate a batch; returns whether its requests carry images."""
    if len(requests) == 0:
        raise InputError("no requests given")
    options.validate()
    for r in requests:
        r.validate()
    with_image = {r.image is not None for r in requests}
    if len(with_image) > 1:
        raise InputError("a batch must be all image questions or all text-only questions")
    return with_image.pop()


def chat_messages(user_text: str, with_image: bool) -> list[dict]:
    """The single-turn chat in the Hugging Face processor format (image first, then text)."""
    content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": user_text}]
    return [{"role": "user", "content": content}]


def to_pil(image: np.ndarray):
    """(H, W, 3) uint8 RGB array -> PIL image (what every Hugging Face image processor accepts)."""
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(image), mode="RGB")


def caption_logprob_sums(logits: np.ndarray, input_ids: np.ndarray, attention_mask: np.ndarray,
                         n_head: int) -> np.ndarray:
    """Sum of log p(token) over each row's tokens after the first ``n_head`` (right-padded rows).

    ``logits`` (B, S, V) at each position predict the next token; ``n_head`` is the prompt length in tokens
    (image placeholders expanded), identical for every row. Returns (B,) float64 nats.
    """
    from scipy.special import log_softmax

    lp = log_softmax(logits[:, :-1].astype(np.float64), axis=-1)
    target = input_ids[:, 1:]
    token_lp = np.take_along_axis(lp, target[..., None], axis=-1)[..., 0]
    positions = np.arange(1, input_ids.shape[1])[None, :]
    mask = (positions >= n_head) & (attention_mask[:, 1:] > 0)
    return (token_lp * mask).sum(axis=1)


@dataclass(frozen=True)
class EngineSettings:
    """What :func:`load_engine` needs: model id/path, backend, device, dtype and interventions.

    ``model``: Hugging Face id or local directory (transformers) or export directory (onnx).
    ``backend``: "transformers" or "onnx". ``device``: "cpu", "cuda", "cuda:1"... (onnx: "cpu" restricts
    the provider list to the CPU, anything else tries TensorRT -> CUDA -> CPU). ``dtype``: "auto",
    "float32", "float16" or "bfloat16" (transformers only; an ONNX export fixes its own dtype).
    ``vision_norm``/``vision_layer``: the interventions (see :mod:`spatial_vlm_ros.vlm.interventions`).
    """

    model: str
    backend: str = "transformers"
    device: str = "cpu"
    dtype: str = "auto"
    compile: bool = False
    local_files_only: bool = True
    vision_norm: str = "off"
    vision_layer: int | None = None


BACKENDS = ("transformers", "onnx")


def load_engine(settings: EngineSettings) -> VLMEngine:
    """Build the engine ``settings`` describe. Raises InputError for unknown backends or bad settings."""
    from spatial_vlm_ros.vlm.interventions import InterventionConfig

    if not settings.model:
        raise InputError("no VLM model configured")
    interventions = InterventionConfig(vision_norm=settings.vision_norm, vision_layer=settings.vision_layer)
    interventions.validate()
    if settings.backend == "transformers":
        from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

        return TransformersEngine(settings.model, device=settings.device, dtype=settings.dtype,
                                  compile=settings.compile, interventions=interventions,
                                  local_files_only=settings.local_files_only)
    if settings.backend == "onnx":
        from spatial_vlm_ros.vlm.onnx_engine import open_onnx_engine

        return open_onnx_engine(settings.model, device=settings.device, interventions=interventions)
    raise InputError(f"unknown VLM backend {settings.backend!r}; use one of {', '.join(BACKENDS)}")


def model_type(model: str, local_files_only: bool = True) -> str:
    """``config.model_type`` of a hub id or local model directory; InputError if there is no config."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model, local_files_only=local_files_only).model_type
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read a model config from {model!r}: {str(err).splitlines()[0]}") from None


_QWEN_PROCESSOR = "spatial_vlm_ros.vlm.qwen_vl_processor:load_qwen_vl_processor"
#: model_type -> ``"module:callable"`` loading its processor, ``callable(model, local_files_only=...)``, where
#: ``AutoProcessor`` is not used: the stock SmolVLM and Qwen-VL processors require a video processor, which
#: needs torchvision. ``Idefics3Processor`` builds SmolVLM's image prompts from the same saved image
#: processor and tokenizer; Qwen-VL gets the image-only processor of
#: :mod:`~spatial_vlm_ros.vlm.qwen_vl_processor`. Both handle image inputs only.
PROCESSOR_LOADERS = {
    "smolvlm": "transformers:Idefics3Processor.from_pretrained",
    "qwen2_vl": _QWEN_PROCESSOR,
    "qwen2_5_vl": _QWEN_PROCESSOR,
    "qwen3_vl": _QWEN_PROCESSOR,
}
_DEFAULT_PROCESSOR = "transformers:AutoProcessor.from_pretrained"


def load_processor(model: str, local_files_only: bool = True):
    """The Hugging Face processor of ``model`` (hub id, model or export directory).

    Image pre-processing never needs torchvision: without it transformers loads the PIL backend of each
    image processor (``image_processing_pil_*``, e.g. ``SmolVLMImageProcessorPil``,
    ``Idefics3ImageProcessorPil``, ``CLIPImageProcessorPil``, ``Qwen2VLImageProcessorPil``), which these
    engines feed PIL images anyway. The families of :data:`PROCESSOR_LOADERS` get their own loader.
    Raises InputError if nothing loads.
    """
    from spatial_vlm_ros.vlm.registry import load_attribute

    family = model_type(model, local_files_only)
    loader = load_attribute(PROCESSOR_LOADERS.get(family, _DEFAULT_PROCESSOR))
    try:
        return loader(model, local_files_only=local_files_only)
    except (OSError, ImportError, ValueError) as err:
        raise InputError(f"cannot load the processor of {model!r} ({family}): "
                         f"{str(err).strip().splitlines()[0]}") from None

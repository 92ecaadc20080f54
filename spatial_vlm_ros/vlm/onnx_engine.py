"""onnxruntime backend: runs a model exported by :mod:`spatial_vlm_ros.vlm.onnx_export`.

:func:`open_onnx_engine` opens an export directory with the class its ``export_meta.json`` family names
(:data:`RUNTIMES`): :class:`OnnxEngine` (LLaVA, and the base of the others),
:class:`~spatial_vlm_ros.vlm.onnx_idefics3.Idefics3OnnxEngine` (Idefics3 / SmolVLM) and the Qwen-VL engine.

Provider priority TensorRT -> CUDA -> CPU (:mod:`spatial_vlm_ros.runtime.providers`): each is tried in turn
and the reason it was skipped (not in this onnxruntime build, session creation failed, the session fell
back) is logged. ``device="cpu"`` tries the CPU provider only. On GPU providers inputs and the KV cache are
bound with IO binding: each step's ``present`` outputs stay OrtValues on the device and are bound as the
next step's ``past`` inputs, never copied through numpy (``io_binding=True`` uses the same path on the CPU,
with identical results). fp16: an export with ``dtype: float16`` runs in fp16 on CUDA; TensorRT also
builds fp16 engines from an fp32 export (``trt_fp16_enable``); the CPU provider should be given a float32
export.

Pre-processing (tokenizer, image processor, chat template) is the Hugging Face processor saved with the
export (:func:`~spatial_vlm_ros.vlm.engine.load_processor`: PIL image processors, no torchvision), so
prompts are tokenised exactly as in the transformers backend. A prompt that does not fit the model's
context (``max_position_embeddings``) is refused with InputError. Decoding mirrors Hugging Face
greedy search: left padding, ``position_ids = cumsum(attention_mask) - 1``, finished rows fed the pad
token.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.runtime.providers import GPU_PROVIDERS, device_id, open_session
from spatial_vlm_ros.vlm.engine import (
    CAPTION_PROMPT,
    GenerationOptions,
    ProcessorEngine,
    VLMAnswer,
    VLMRequest,
    caption_logprob_sums,
    load_processor,
    make_answer,
)
from spatial_vlm_ros.vlm.interventions import InterventionConfig, rescale_to_norm
from spatial_vlm_ros.vlm.onnx_export import DECODER_FILE, EMBED_FILE, META_FILE, VISION_FILE
from spatial_vlm_ros.vlm.registry import resolve_family

log = logging.getLogger(__name__)

_IDEFICS3_RUNTIME = "spatial_vlm_ros.vlm.onnx_idefics3:Idefics3OnnxEngine"
_QWEN_RUNTIME = "spatial_vlm_ros.vlm.onnx_qwen_vl:QwenVLOnnxEngine"
#: export_meta.json ``family`` -> ``"module:class"`` of the engine that runs it.
RUNTIMES = {
    "llava": "spatial_vlm_ros.vlm.onnx_engine:OnnxEngine",
    "idefics3": _IDEFICS3_RUNTIME,
    "smolvlm": _IDEFICS3_RUNTIME,
    "qwen2_vl": _QWEN_RUNTIME,
    "qwen2_5_vl": _QWEN_RUNTIME,
    "qwen3_vl": _QWEN_RUNTIME,
}


def read_export_meta(export_dir: Path) -> dict:
    """export_meta.json of an export directory; InputError if it is not one."""
    path = Path(export_dir) / META_FILE
    if not path.is_file():
        raise InputError(f"{export_dir} is not an ONNX export (no {META_FILE}); run the export first")
    return json.loads(path.read_text())


def open_onnx_engine(export_dir: str | Path, **kwargs) -> OnnxEngine:
    """The engine for ``export_dir``, its class picked by the export's family; ``kwargs`` go to it."""
    family = read_export_meta(Path(export_dir)).get("family", "")
    return resolve_family(RUNTIMES, family, "the ONNX backend")(export_dir, **kwargs)


class OnnxEngine(ProcessorEngine):
    """An exported VLM on onnxruntime (see the module doc). ``export_dir``: the export's output directory;
    ``threads``: CPU intra-op threads (0 = one per core). Raises InputError for a directory that is not a
    complete export of one of ``families``."""

    backend = "onnx"
    families: tuple[str, ...] = ("llava",)
    graph_files: tuple[str, ...] = (VISION_FILE, EMBED_FILE, DECODER_FILE)

    def __init__(self, export_dir: str | Path, device: str = "cpu",
                 interventions: InterventionConfig | None = None, io_binding: bool | None = None,
                 fp16: bool = True, threads: int = 0):
        self.dir = Path(export_dir)
        self.meta = read_export_meta(self.dir)
        if self.meta.get("family") not in self.families:
            raise InputError(f"{self.dir} holds a {self.meta.get('family')!r} export, which {type(self).__name__} "
                             "does not run; open it with open_onnx_engine")
        missing = [name for name in self.graph_files if not (self.dir / name).is_file()]
        if missing:
            raise InputError(f"{self.dir} is an incomplete export (missing {', '.join(missing)}); "
                             "re-run the export")
        self.model_name = self.meta.get("source_model", str(self.dir))
        self.interventions = interventions or InterventionConfig()
        self.interventions.validate()
        layer = self.interventions.vision_layer
        if layer is not None and layer != self.meta.get("vision_layer_requested") \
                and layer != self.meta.get("vision_layer"):
            raise InputError(f"this export takes vision features from layer {self.meta['vision_layer']}; "
                             f"re-export with vision_layer: {layer}")
        self.decoder, self.provider, self.fallbacks = open_session(self.dir / DECODER_FILE, device, fp16,
                                                                   threads=threads)
        log.info("onnx engine %s on %s", self.dir, self.provider)
        if self.provider == "CPUExecutionProvider" and self.meta["dtype"] == "float16":
            log.warning("float16 export on the CPU provider: expect slow or unsupported kernels; "
                        "export float32 for CPU")
        chain = [self.provider]
        self.vision, _, _ = open_session(self.dir / VISION_FILE, device, fp16, chain, threads)
        self.embed, _, _ = open_session(self.dir / EMBED_FILE, device, fp16, chain, threads)
        self.on_gpu = self.provider in GPU_PROVIDERS
        self.io_binding = self.on_gpu if io_binding is None else bool(io_binding)
        self.ort_device = ("cuda", device_id(device)) if self.on_gpu else ("cpu", 0)
        self.float = np.float16 if self.meta["dtype"] == "float16" else np.float32
        self.processor = load_processor(str(self.dir))
        self.past_names = self.meta["past_names"]
        self.present_names = self.meta["present_names"]

    # -- graph calls --------------------------------------------------------------------------------------
    def image_features(self, pixel_values: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) -> (B, N, hidden) vision tokens as they enter the language model."""
        feats = self.vision.run(None, {"pixel_values": pixel_values.astype(self.float)})[0]
        if self.interventions.vision_norm == "text_mean":
            feats = rescale_to_norm(feats, self.meta["text_norm_stats"]["mean"])
        return feats

    def embeddings(self, input_ids: np.ndarray, pixel_values: np.ndarray | None, **image_inputs) -> np.ndarray:
        """Token embeddings with the image placeholder positions replaced, in order, by the vision tokens of
        :meth:`image_features` (``image_inputs``: the further processor outputs a family's
        ``image_features`` takes, e.g. Qwen-VL's ``image_grid_thw``)."""
        embeds = self.embed.run(None, {"input_ids": input_ids.astype(np.int64)})[0]
        if pixel_values is not None:
            feats = self.image_features(pixel_values, **image_inputs)
            tokens = feats.reshape(-1, feats.shape[-1])
            mask = input_ids == self.meta["image_token_id"]
            if int(mask.sum()) != len(tokens):
                raise InputError(f"prompt has {int(mask.sum())} image tokens but the vision encoder gave "
                                 f"{len(tokens)}")
            embeds[mask] = tokens.astype(embeds.dtype)
        return embeds

    def _empty_past(self, batch: int) -> list:
        shape = (batch, self.meta["num_kv_heads"], 0, self.meta["head_dim"])
        past = [np.zeros(shape, dtype=self.float) for _ in self.past_names]
        if self.io_binding:
            import onnxruntime as ort

            past = [ort.OrtValue.ortvalue_from_numpy(p, *self.ort_device) for p in past]
        return past

    def decode_step(self, embeds: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray, past):
        """One decoder call; returns ``(logits (B, S, V) float32 numpy, present)``.

        With IO binding ``past``/``present`` are OrtValues that stay on the provider's device.
        """
        feeds = {"inputs_embeds": embeds.astype(self.float), "attention_mask": attention_mask.astype(np.int64),
                 "position_ids": position_ids.astype(np.int64)}
        if not self.io_binding:
            feeds.update(zip(self.past_names, past))
            out = self.decoder.run(None, feeds)
            return out[0].astype(np.float32), out[1:]
        import onnxruntime as ort

        binding = self.decoder.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, *self.ort_device))
        for name, value in zip(self.past_names, past):
            binding.bind_ortvalue_input(name, value)
        binding.bind_output("logits", "cpu")
        for name in self.present_names:
            binding.bind_output(name, *self.ort_device)
        self.decoder.run_with_iobinding(binding)
        outs = binding.get_outputs()
        return outs[0].numpy().astype(np.float32), list(outs[1:])

    # -- inputs -------------------------------------------------------------------------------------------
    def check_context(self, prompt_tokens: int) -> None:
        """Raise InputError when a prompt of ``prompt_tokens`` (padded batch length) leaves no room in the
        model's context (``max_position_embeddings``) for a generated token."""
        context = self.meta.get("max_position_embeddings")
        if context is not None and prompt_tokens >= context:
            raise InputError(f"the prompt is {prompt_tokens} tokens; the model's context is {context} tokens")

    def _prefill_inputs(self, inputs, with_image: bool):
        """``(ids, mask, embeds, positions)`` of a processor batch: token ids and attention mask (B, S) int64,
        input embeddings (B, S, H) with the image features merged in, and position ids
        ``cumsum(mask) - 1`` (1 on padding), as Hugging Face computes them. Calls :meth:`check_context`."""
        ids = np.asarray(inputs["input_ids"], dtype=np.int64)
        self.check_context(ids.shape[1])
        mask = np.asarray(inputs["attention_mask"], dtype=np.int64)
        embeds = self.embeddings(ids, np.asarray(inputs["pixel_values"]) if with_image else None)
        positions = np.where(mask > 0, np.cumsum(mask, axis=1) - 1, 1)
        return ids, mask, embeds, positions

    # -- generation ---------------------------------------------------------------------------------------
    def generate(self, requests: Sequence[VLMRequest],
                 options: GenerationOptions = GenerationOptions()) -> list[VLMAnswer]:
        from scipy.special import log_softmax

        inputs, with_image = self._request_inputs(requests, options)
        ids, mask, embeds, positions = self._prefill_inputs(inputs, with_image)
        batch = ids.shape[0]
        past = self._empty_past(batch)
        eos = set(self.meta["eos_token_ids"])
        pad = self.meta["pad_token_id"] if self.meta["pad_token_id"] is not None else next(iter(eos))
        rng = np.random.default_rng(options.seed)
        unfinished = np.ones(batch, dtype=bool)
        tokens, logprobs = [], []
        context = self.meta.get("max_position_embeddings") or ids.shape[1] + options.max_new_tokens
        for _ in range(min(options.max_new_tokens, context - ids.shape[1])):
            logits, past = self.decode_step(embeds, mask, positions, past)
            step_lp = log_softmax(logits[:, -1].astype(np.float64), axis=-1)
            if options.temperature > 0:
                probs = np.exp(log_softmax(logits[:, -1].astype(np.float64) / options.temperature, axis=-1))
                nxt = np.array([rng.choice(probs.shape[1], p=p / p.sum()) for p in probs])
            else:
                nxt = step_lp.argmax(axis=-1)
            nxt = np.where(unfinished, nxt, pad)
            tokens.append(nxt)
            logprobs.append(step_lp[np.arange(batch), nxt])
            unfinished &= ~np.isin(nxt, list(eos))
            if not unfinished.any():
                break
            embeds = self.embed.run(None, {"input_ids": nxt[:, None].astype(np.int64)})[0]
            positions = positions[:, -1:] + 1
            mask = np.concatenate([mask, np.ones((batch, 1), dtype=np.int64)], axis=1)
        tokens = np.stack(tokens, axis=1)
        logprobs = np.stack(logprobs, axis=1)
        prompt_tokens = np.asarray(inputs["attention_mask"]).sum(axis=1)
        return [make_answer(self.tokenizer, tokens[i], logprobs[i] if options.return_logprobs else None,
                            prompt_tokens[i], eos) for i in range(batch)]

    def prefill_logits(self, requests: Sequence[VLMRequest]) -> np.ndarray:
        """Logits (B, S, V) of the prompt pass (left-padded), for parity checks and benchmarks."""
        inputs, with_image = self._request_inputs(requests, GenerationOptions())
        ids, mask, embeds, positions = self._prefill_inputs(inputs, with_image)
        return self.decode_step(embeds, mask, positions, self._empty_past(ids.shape[0]))[0]

    # -- caption scoring (What's Up) ---------------------------------------------------------------------
    def score_captions(self, image: np.ndarray, captions: Sequence[str],
                       prompt: str = CAPTION_PROMPT) -> np.ndarray:
        inputs, n_head = self._caption_inputs(image, captions, prompt)
        ids, mask, embeds, positions = self._prefill_inputs(inputs, with_image=True)
        logits, _ = self.decode_step(embeds, mask, positions, self._empty_past(ids.shape[0]))
        return caption_logprob_sums(logits, ids, mask, n_head)

"""PyTorch backend: any Hugging Face image-text-to-text model, by hub id or local directory.

Loads the processor (:func:`~spatial_vlm_ros.vlm.engine.load_processor`: PIL image processors, no
torchvision) and ``AutoModelForImageTextToText`` from safetensors only (``use_safetensors=True``;
pickle checkpoints are refused), on the chosen device and dtype, in eval mode, optionally compiled with
``torch.compile``. Decoding is greedy unless a temperature is given. Tested on tiny random models: LLaVA,
and Qwen2.5-VL and SmolVLM against the ONNX engine (see models/README.md).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.runtime.device import DTYPES, resolve_dtype  # noqa: F401 (re-exported)
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
from spatial_vlm_ros.vlm.interventions import InterventionConfig, apply_interventions

log = logging.getLogger(__name__)


class TransformersEngine(ProcessorEngine):
    """A Hugging Face VLM on PyTorch.

    ``model``: hub id (downloaded unless ``local_files_only``) or a local directory with safetensors.
    ``device``: "cpu", "cuda", "cuda:N". ``dtype``: see :data:`DTYPES`. ``compile``: ``torch.compile`` the
    language model's forward. ``interventions``: see :mod:`spatial_vlm_ros.vlm.interventions`.
    """

    backend = "transformers"
    return_tensors = "pt"

    def __init__(self, model: str, device: str = "cpu", dtype: str = "auto", compile: bool = False,
                 interventions: InterventionConfig | None = None, local_files_only: bool = True,
                 attn_implementation: str | None = None):
        import torch
        from transformers import AutoModelForImageTextToText

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device {device!r} requested but PyTorch sees no CUDA device")
        self.model_name = str(model)
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype, device)
        kwargs = {"local_files_only": local_files_only}
        if local_files_only:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.processor = load_processor(model, local_files_only)
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        self.model = AutoModelForImageTextToText.from_pretrained(
            model, dtype=self.dtype, use_safetensors=True, **kwargs, **extra).to(self.device).eval()
        self.interventions = interventions or InterventionConfig()
        self.applied = apply_interventions(self.model, self.interventions,
                                           exclude_ids=self.tokenizer.all_special_ids)
        if compile:
            self.model.forward = torch.compile(self.model.forward, dynamic=True)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        log.info("loaded %s on %s (%s), interventions %s", model, self.device, self.dtype, self.applied or "none")

    # -- inputs -------------------------------------------------------------------------------------------
    def _inputs(self, texts: list[str], images: list | None, padding_side: str):
        """The processor batch as tensors on the model's device (floating point ones in its dtype)."""
        batch = super()._inputs(texts, images, padding_side)
        return {k: (v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in batch.items() if hasattr(v, "to")}

    # -- generation ---------------------------------------------------------------------------------------
    def generate(self, requests: Sequence[VLMRequest],
                 options: GenerationOptions = GenerationOptions()) -> list[VLMAnswer]:
        import torch

        inputs, _ = self._request_inputs(requests, options)
        gen_kwargs = dict(max_new_tokens=options.max_new_tokens, return_dict_in_generate=True,
                          output_logits=options.return_logprobs, num_beams=1,
                          pad_token_id=self.tokenizer.pad_token_id)
        if options.temperature > 0:
            torch.manual_seed(options.seed)
            gen_kwargs.update(do_sample=True, temperature=options.temperature, top_k=0, top_p=1.0)
        else:
            gen_kwargs.update(do_sample=False, temperature=None, top_k=None, top_p=None)
        with torch.inference_mode():
            out = self.model.generate(**inputs, **gen_kwargs)
        prompt_len = inputs["input_ids"].shape[1]
        new = out.sequences[:, prompt_len:].cpu().numpy()
        logprobs = None
        if options.return_logprobs:
            steps = torch.stack(out.logits, dim=1).float().log_softmax(-1)       # (B, T, V)
            logprobs = torch.gather(steps, 2, out.sequences[:, prompt_len:, None]).squeeze(2).cpu().numpy()
        prompt_tokens = inputs["attention_mask"].sum(1).cpu().numpy()
        return [self._answer(new[i], None if logprobs is None else logprobs[i], int(prompt_tokens[i]))
                for i in range(len(requests))]

    def _answer(self, ids: np.ndarray, logprobs: np.ndarray | None, prompt_tokens: int) -> VLMAnswer:
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        return make_answer(self.tokenizer, ids, logprobs, prompt_tokens, eos)

    # -- caption scoring (What's Up) ---------------------------------------------------------------------
    def score_captions(self, image: np.ndarray, captions: Sequence[str],
                       prompt: str = CAPTION_PROMPT) -> np.ndarray:
        import torch

        inputs, n_head = self._caption_inputs(image, captions, prompt)
        with torch.inference_mode():
            logits = self.model(**inputs).logits.float()
        return caption_logprob_sums(logits.cpu().numpy(), inputs["input_ids"].cpu().numpy(),
                                    inputs["attention_mask"].cpu().numpy(), n_head)

    def close(self) -> None:
        import torch

        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

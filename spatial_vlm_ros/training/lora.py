"""LoRA fine-tuning of any open ``AutoModelForImageTextToText`` VLM on spatial VQA datasets (``peft``).

A plain PyTorch loop: AdamW on the adapter parameters only (the base model, vision tower included, stays
frozen unless configured otherwise), linear warm-up then linear decay, gradient accumulation with the loss
averaged over every answer token of the optimizer step, gradient clipping. Training rows are visited in a
seeded per-epoch permutation, so the batch of any step is known from the step number alone, which is what
makes ``--resume`` continue exactly where a run stopped.

Output directory (``output_dir`` of the config)::

    log.jsonl                      one JSON object per line: start, train (loss, lr, grad_norm), eval
                                   (eval_loss, exact_match), checkpoint, end
    checkpoints/step-00000200/     adapter/ (peft, safetensors), trainer_state.pt (optimizer, scheduler,
                                   loss scaler, RNG states), state.json (step, config)
    adapter/                       the final adapter + the processor (input of :func:`merge_adapter`)

``merge_adapter`` folds the adapter into the base weights and saves a full model directory (safetensors +
processor) that :class:`~spatial_vlm_ros.vlm.transformers_engine.TransformersEngine` loads like any model.

Command line: ``python -m spatial_vlm_ros.training.lora --config config/lora.yaml [--resume] [--max-steps N]``
and ``python -m spatial_vlm_ros.training.lora merge --adapter DIR --out DIR``.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError, SpatialError
from spatial_vlm_ros.training.lora_config import (
    DEFAULT_TARGETS,
    LLAMA_STYLE_TARGETS,
    AdapterConfig,
    RunConfig,
    load_config,
)
from spatial_vlm_ros.training.vqa_data import (
    IGNORE_INDEX,
    VQACollator,
    load_vqa_datasets,
    normalise_answer,
    rows_of,
    split_by_column,
    split_by_hash,
)

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
CHECKPOINT_DIR = "checkpoints"
LOG_FILE = "log.jsonl"
_CKPT = re.compile(r"^step-(\d{8})$")
#: Columns the trainer reads (the rest of the schema is provenance).
_COLUMNS = ("sample_id", "image", "question", "answer", "kind")


# -- device, dtype, model ------------------------------------------------------------------------------------
def select_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when PyTorch sees one, else ``cpu``; ``cuda``/``cuda:N`` checked to exist."""
    from spatial_vlm_ros.runtime.device import resolve_device

    return resolve_device(device)


def train_dtype(dtype: str, device: str):
    """The base model's dtype for training: ``auto`` -> bfloat16 on a CUDA device that supports it, float16
    on other CUDA devices, float32 on the CPU. float16 on the CPU is refused."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype == "float16" and not device.startswith("cuda"):
        raise InputError("float16 training needs a CUDA device; use float32 or bfloat16 on the CPU")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise InputError(f"unknown training dtype {dtype!r}")
    return getattr(torch, dtype)


def load_base_model(model: str, device: str = "cpu", dtype=None, allow_download: bool = False):
    """``(model, processor)``: ``AutoModelForImageTextToText`` from a hub id or local directory (safetensors
    only, offline unless ``allow_download``) on ``device`` in ``dtype``, and its processor."""
    import torch
    from transformers import AutoModelForImageTextToText

    from spatial_vlm_ros.runtime.loading import from_pretrained, resolve_model
    from spatial_vlm_ros.vlm.engine import load_processor

    offline = not allow_download
    ref = resolve_model(model, offline=offline)
    net = from_pretrained(AutoModelForImageTextToText, model, offline=offline, dtype=dtype or torch.float32)
    processor = load_processor(ref, local_files_only=offline or Path(ref).is_dir())
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return net.to(device), processor


def _module_name(model, module) -> str | None:
    return next((name for name, m in model.named_modules() if m is module), None)


def language_model_prefix(model) -> str:
    """Dotted name of the decoder (language model) inside a VLM, e.g. ``model.language_model``."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    name = _module_name(model, decoder) if decoder is not None else None
    if name:
        return name
    for candidate, _ in model.named_modules():
        if candidate.endswith(("language_model", "text_model")):
            return candidate
    raise InputError(f"cannot find the language model inside {type(model).__name__}")


def vision_tower_prefix(model) -> str | None:
    """Dotted name of the vision encoder inside a VLM (``vision_tower``, ``visual``, ``vision_model``)."""
    for name, _ in model.named_modules():
        if name.split(".")[-1] in ("vision_tower", "visual", "vision_model", "vision_encoder"):
            return name
    return None


def lora_targets(model, adapter: AdapterConfig) -> list[str]:
    """Full names of the linear layers LoRA adapts: language-model layers whose leaf name is in
    ``adapter.target_modules`` (or the family default), plus every vision-tower linear layer when
    ``adapter.train_vision``. Raises InputError when nothing matches."""
    import torch

    family = getattr(model.config, "model_type", "")
    leaves = set(adapter.target_modules or DEFAULT_TARGETS.get(family, LLAMA_STYLE_TARGETS))
    lm = language_model_prefix(model) + "."
    vision = vision_tower_prefix(model) if adapter.train_vision else None
    linear = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    names = [n for n, _ in linear if n.startswith(lm) and n.rsplit(".", 1)[-1] in leaves]
    if not names:
        found = sorted({n.rsplit(".", 1)[-1] for n, _ in linear if n.startswith(lm)})
        raise InputError(f"no language-model linear layer of this {family or 'model'} is named "
                         f"{sorted(leaves)}; its linear layers are named {found}")
    if adapter.train_vision:
        if vision is None:
            raise InputError(f"lora.train_vision: no vision tower found in this {family or 'model'}")
        names += [n for n, _ in linear if n.startswith(vision + ".")]
    return names


def build_peft_model(model, adapter: AdapterConfig):
    """``model`` wrapped by ``peft`` with LoRA adapters on :func:`lora_targets` (everything else frozen)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=adapter.r, lora_alpha=adapter.alpha, lora_dropout=adapter.dropout,
                        target_modules=lora_targets(model, adapter), modules_to_save=adapter.modules_to_save or None,
                        bias="none")
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise InputError(f"cannot add LoRA adapters: {str(err).splitlines()[0]}") from None


# -- data ------------------------------------------------------------------------------------------------------
def prepare_data(cfg: RunConfig):
    """``(train, eval)`` datasets of the config (only the columns the trainer reads)."""
    d = cfg.data
    ds = load_vqa_datasets(d.train)
    if d.eval:
        train, evaluation = ds, load_vqa_datasets(d.eval)
    elif d.split_column:
        train, evaluation = split_by_column(ds, d.split_column, d.eval_values)
    else:
        train, evaluation = split_by_hash(ds, d.eval_fraction)        # independent of the training seed
    if d.max_train_rows:
        train = train.select(range(min(d.max_train_rows, len(train))))
    if d.max_eval_rows:
        evaluation = evaluation.select(range(min(d.max_eval_rows, len(evaluation))))
    if len(train) == 0:
        raise InputError("the training split is empty")
    keep = lambda ds_: ds_.select_columns([c for c in _COLUMNS if c in ds_.column_names])  # noqa: E731
    return keep(train), keep(evaluation)


@dataclass
class BatchPlan:
    """Which rows each micro-batch holds: a seeded permutation per epoch, ``batch_size`` rows per
    micro-batch (the last one of an epoch may be shorter), ``grad_accum`` micro-batches per step."""

    n_rows: int
    batch_size: int
    grad_accum: int
    seed: int

    @property
    def micro_per_epoch(self) -> int:
        return math.ceil(self.n_rows / self.batch_size)

    def total_steps(self, epochs: float, max_steps: int) -> int:
        if max_steps > 0:
            return max_steps
        return max(1, math.ceil(epochs * self.micro_per_epoch / self.grad_accum))

    def micro_batch(self, index: int) -> list[int]:
        import torch

        epoch, pos = divmod(index, self.micro_per_epoch)
        perm = torch.randperm(self.n_rows, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
        return perm[pos * self.batch_size:(pos + 1) * self.batch_size].tolist()

    def step_batches(self, step: int) -> list[list[int]]:
        """Row indices of the micro-batches of optimizer step ``step`` (0-based)."""
        return [self.micro_batch(step * self.grad_accum + k) for k in range(self.grad_accum)]

    def epoch_of(self, step: int) -> float:
        return step * self.grad_accum / self.micro_per_epoch


def _to_device(batch: dict, device, dtype) -> dict:
    return {k: (v.to(device, dtype) if v.is_floating_point() else v.to(device)) for k, v in batch.items()
            if hasattr(v, "to")}


def token_loss_sum(model, batch: dict):
    """``(sum of answer-token cross-entropies (nats), number of answer tokens)`` of one batch."""
    import torch

    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX                     # score only answer positions (saves a full-vocab copy)
    logits = model(**inputs, use_cache=False).logits[:, :-1][keep].float()
    loss = torch.nn.functional.cross_entropy(logits, target[keep], reduction="sum")
    return loss, int(keep.sum())


def evaluate(model, collator: VQACollator, ds, batch_size: int, generate_rows: int, max_new_tokens: int,
             device, dtype) -> dict:
    """Eval loss (mean nats per answer token over ``ds``) and exact match of greedy answers on the first
    ``generate_rows`` rows (overall and per ``kind`` when the column exists)."""
    import torch

    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    matches: dict[str, list[bool]] = {}
    tokenizer = collator.tokenizer
    with torch.inference_mode():
        for start in range(0, len(ds), batch_size):
            rows = rows_of(ds, range(start, min(start + batch_size, len(ds))))
            loss, n = token_loss_sum(model, _to_device(collator(rows), device, dtype))
            total, tokens = total + float(loss), tokens + n
        for start in range(0, min(generate_rows, len(ds)), batch_size):
            rows = rows_of(ds, range(start, min(start + batch_size, generate_rows, len(ds))))
            inputs = _to_device(collator.prompt_batch(rows), device, dtype)
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                 use_cache=True, pad_token_id=tokenizer.pad_token_id)
            texts = tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            for row, text in zip(rows, texts):
                ok = normalise_answer(text) == normalise_answer(row["answer"])
                matches.setdefault("all", []).append(ok)
                matches.setdefault(row.get("kind") or "", []).append(ok)
    model.train(was_training)
    result = {"eval_loss": total / tokens if tokens else float("nan"), "eval_rows": len(ds),
              "exact_match": float(sum(matches["all"]) / len(matches["all"])) if matches.get("all") else None,
              "generated_rows": len(matches.get("all", []))}
    kinds = {k: float(sum(v) / len(v)) for k, v in matches.items() if k not in ("all", "")}
    if kinds:
        result["exact_match_by_kind"] = kinds
    return result


# -- checkpoints -------------------------------------------------------------------------------------------
def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints (those with ``state.json``) of a run, oldest first."""
    root = Path(output_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _CKPT.match(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(_CKPT.match(p.name).group(1)))


def _resume_keys(cfg: RunConfig) -> dict:
    """The settings a resumed run must share with the run that wrote the checkpoint."""
    t = cfg.train
    return {"model": cfg.model, "lora": cfg.to_dict()["lora"], "train_rows_seed": t.seed,
            "batch_size": t.batch_size, "grad_accum": t.grad_accum}


def save_checkpoint(model, optimizer, scheduler, scaler, step: int, cfg: RunConfig) -> Path:
    """Write checkpoint ``step`` atomically (temporary folder renamed when complete); keeps the newest
    ``train.keep_checkpoints``."""
    import torch

    root = Path(cfg.output_dir) / CHECKPOINT_DIR
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp / ADAPTER_DIR, safe_serialization=True)
    state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "scaler": scaler.state_dict() if scaler is not None else None,
             "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    torch.save(state, tmp / "trainer_state.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "resume_keys": _resume_keys(cfg),
                                                "config": cfg.to_dict()}, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in checkpoint_dirs(cfg.output_dir)[:-cfg.train.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model, optimizer, scheduler, scaler, cfg: RunConfig) -> int:
    """Restore adapter weights, optimizer, scheduler, loss scaler and RNG states from ``path``; returns the
    step it was written at. Raises InputError if it was written with a different model, LoRA or batching."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    meta = json.loads((path / "state.json").read_text())
    theirs, ours = meta.get("resume_keys", {}), json.loads(json.dumps(_resume_keys(cfg)))
    changed = sorted(k for k in ours if theirs.get(k) != ours[k])
    if changed:
        raise InputError(f"checkpoint {path} was written with different {', '.join(changed)}; "
                         "start a new output_dir or restore the settings")
    weights = load_file(str(path / ADAPTER_DIR / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise InputError(f"checkpoint {path} holds weights this model has no place for: {unexpected[:3]}")
    state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(meta["step"])


# -- training ----------------------------------------------------------------------------------------------
class JsonLog:
    """Appends one JSON object per line to ``path`` (and mirrors a short form to the logger)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Drop the records of steps after ``step`` (logged by a run after its last checkpoint), so a resumed
        run's log has each step once."""
        if self.path.is_file():
            kept = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= step]
            self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    def write(self, record: dict) -> None:
        record = {"time": round(time.time(), 3), **record}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, allow_nan=True) + "\n")
        log.info("%s", " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in record.items() if k not in ("time", "config")))


def read_log(output_dir: str | Path) -> list[dict]:
    """The records of a run's ``log.jsonl``."""
    path = Path(output_dir) / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass
class TrainResult:
    """What a call of :func:`train` did: the step reached, the total planned, the adapter directory (None if
    it stopped before the end), and the last evaluation."""

    step: int
    total_steps: int
    adapter_dir: Path | None
    last_eval: dict | None


def train(cfg: RunConfig, resume: bool = False, stop_after: int | None = None) -> TrainResult:
    """Fine-tune ``cfg.model`` with LoRA on ``cfg.data``; see the module docstring for the outputs.

    ``resume``: continue from the newest complete checkpoint in ``cfg.output_dir`` (InputError if none).
    ``stop_after``: stop (with a checkpoint) after this many optimizer steps in this call, e.g. for a time
    slice; the schedule still spans the full run, so a later ``resume`` continues it unchanged.
    """
    run = _Run(cfg, resume)
    t, done_here, last_eval = cfg.train, 0, None
    while run.step < run.total and (stop_after is None or done_here < stop_after):
        record = run.optimizer_step()
        done_here += 1
        step, last = run.step, run.step == run.total
        if (t.log_every and step % t.log_every == 0) or last or step == 1:
            run.logger.write({"event": "train", **record, **run.window_rates()})
        if (t.eval_every and step % t.eval_every == 0) or last:
            last_eval = run.evaluate()
        if (t.save_every and step % t.save_every == 0) or last or done_here == stop_after:
            run.checkpoint()
    return TrainResult(step=run.step, total_steps=run.total, adapter_dir=run.finish(), last_eval=last_eval)


class _Run:
    """The state of one :func:`train` call: data, model with adapters, optimizer, schedule, log."""

    def __init__(self, cfg: RunConfig, resume: bool):
        import torch
        from transformers import get_linear_schedule_with_warmup

        t = cfg.train
        self.cfg, self.out = cfg, Path(cfg.output_dir)
        ckpts = checkpoint_dirs(self.out)
        if resume and not ckpts:
            raise InputError(f"--resume: no checkpoint in {self.out / CHECKPOINT_DIR}")
        if not resume and ckpts:
            raise InputError(f"{self.out} already holds checkpoints; pass --resume to continue or pick a new "
                             "output_dir")
        self.device = select_device(t.device)
        self.dtype = train_dtype(t.dtype, self.device)
        torch.manual_seed(t.seed)
        self.train_ds, self.eval_ds = prepare_data(cfg)
        base, self.processor = load_base_model(cfg.model, self.device, self.dtype, cfg.allow_download)
        base.config.use_cache = False
        if t.gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model = build_peft_model(base, cfg.lora)
        self.model.train()
        self.collator = VQACollator(self.processor, max_length=cfg.data.max_length or None)
        self.plan = BatchPlan(len(self.train_ds), t.batch_size, t.grad_accum, t.seed)
        self.total = self.plan.total_steps(t.epochs, t.max_steps)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=t.lr, weight_decay=t.weight_decay)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, min(t.warmup_steps, self.total), self.total)
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.step = load_checkpoint(ckpts[-1], self.model, self.optimizer, self.scheduler, self.scaler, cfg) \
            if resume else 0
        self.logger = JsonLog(self.out / LOG_FILE)
        if resume:
            self.logger.truncate_after(self.step)
        self._window = (0, time.perf_counter())
        self.logger.write({"event": "resume" if resume else "start", "step": self.step, "total_steps": self.total,
                           "train_rows": len(self.train_ds), "eval_rows": len(self.eval_ds), "device": self.device,
                           "dtype": str(self.dtype).removeprefix("torch."),
                           "trainable_params": sum(p.numel() for p in self.params), "config": cfg.to_dict()})

    def optimizer_step(self) -> dict:
        """One optimizer step over ``grad_accum`` micro-batches; returns its train log fields."""
        import torch

        micro = [_to_device(self.collator(rows_of(self.train_ds, idx)), self.device, self.dtype)
                 for idx in self.plan.step_batches(self.step)]
        n_tokens = sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in micro)
        if n_tokens == 0:
            raise InputError(f"step {self.step}: the batch has no answer tokens")
        step_loss = 0.0
        for batch in micro:
            loss = token_loss_sum(self.model, batch)[0] / n_tokens
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            step_loss += float(loss.detach())
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        clip = self.cfg.train.max_grad_norm or float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, clip))
        lr = self.scheduler.get_last_lr()[0]
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self._window = (self._window[0] + n_tokens, self._window[1])
        return {"step": self.step, "epoch": round(self.plan.epoch_of(self.step), 4), "loss": step_loss, "lr": lr,
                "grad_norm": grad_norm, "answer_tokens": n_tokens}

    def window_rates(self) -> dict:
        """Answer tokens per second since the last call (then restarts the window)."""
        tokens, t0 = self._window
        now = time.perf_counter()
        self._window = (0, now)
        return {"tokens_per_s": tokens / max(now - t0, 1e-9)}

    def evaluate(self) -> dict | None:
        if len(self.eval_ds) == 0:
            return None
        t = self.cfg.train
        result = evaluate(self.model, self.collator, self.eval_ds, t.batch_size, t.eval_generate_rows,
                          t.max_new_tokens, self.device, self.dtype)
        self.logger.write({"event": "eval", "step": self.step, **result})
        return result

    def checkpoint(self) -> None:
        path = save_checkpoint(self.model, self.optimizer, self.scheduler, self.scaler, self.step, self.cfg)
        self.logger.write({"event": "checkpoint", "step": self.step, "path": str(path)})

    def finish(self) -> Path | None:
        """Save the final adapter (with the processor) once the last step is done; None before that."""
        if self.step < self.total:
            return None
        adapter_dir = self.out / ADAPTER_DIR
        shutil.rmtree(adapter_dir, ignore_errors=True)
        self.model.save_pretrained(adapter_dir, safe_serialization=True)
        self.processor.save_pretrained(adapter_dir)
        _set_adapter_base(adapter_dir, self.cfg.model)
        self.logger.write({"event": "end", "step": self.step, "adapter_dir": str(adapter_dir)})
        return adapter_dir


def _set_adapter_base(adapter_dir: Path, model: str) -> None:
    """Record the base model as configured (hub id or local path) in ``adapter_config.json``."""
    path = adapter_dir / "adapter_config.json"
    data = json.loads(path.read_text())
    data["base_model_name_or_path"] = model
    path.write_text(json.dumps(data, indent=2))


# -- merge ---------------------------------------------------------------------------------------------------
def merge_adapter(adapter_dir: str | Path, out_dir: str | Path, base_model: str | None = None,
                  dtype: str = "float32", allow_download: bool = False) -> Path:
    """Fold a LoRA adapter into its base model and save the full model (safetensors) with the processor to
    ``out_dir`` (written to a temporary folder, renamed when complete). ``base_model`` defaults to the one
    recorded in the adapter's ``adapter_config.json``."""
    import torch
    from peft import PeftModel

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise InputError(f"{adapter_dir} is not a LoRA adapter directory (no adapter_config.json)")
    base_ref = base_model or json.loads(config_path.read_text()).get("base_model_name_or_path")
    if not base_ref:
        raise InputError(f"{config_path} names no base model; pass base_model")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise InputError(f"merge dtype must be float32, bfloat16 or float16, got {dtype!r}")
    base, processor = load_base_model(base_ref, "cpu", getattr(torch, dtype), allow_download)
    try:
        peft_model = PeftModel.from_pretrained(base, str(adapter_dir))
    except (ValueError, KeyError, RuntimeError) as err:
        raise InputError(f"adapter {adapter_dir} does not fit base model {base_ref}: "
                         f"{str(err).splitlines()[0]}") from None
    merged = peft_model.merge_and_unload()
    merged.config.use_cache = True
    tmp = out_dir.parent / f".tmp-{out_dir.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


# -- command line ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """``--config F [--resume] [--max-steps N] [--stop-after N] [--output-dir D] [--device D]``."""
    p = argparse.ArgumentParser(prog="spatial_vlm finetune",
                                description="LoRA fine-tuning of a VLM on spatial VQA datasets "
                                            "(`merge --adapter DIR --out DIR` folds an adapter into its base)")
    p.add_argument("--config", required=True, help="run config YAML (see config/lora.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in output_dir")
    p.add_argument("--max-steps", type=int, default=None, help="override train.max_steps (the schedule length)")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop with a checkpoint after N steps of this call (resume later with --resume)")
    p.add_argument("--output-dir", default=None, help="override output_dir")
    p.add_argument("--device", default=None, help="override train.device (auto | cpu | cuda | cuda:N)")
    return p


def build_merge_parser() -> argparse.ArgumentParser:
    """``merge --adapter DIR --out DIR [--base-model M] [--dtype float32|bfloat16|float16]``."""
    p = argparse.ArgumentParser(prog="spatial_vlm finetune merge",
                                description="fold a LoRA adapter into its base model and save the full model")
    p.add_argument("--adapter", required=True, help="adapter directory (output_dir/adapter of a run)")
    p.add_argument("--out", required=True, help="directory of the merged model")
    p.add_argument("--base-model", default=None, help="base model (default: the one the adapter names)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--allow-download", action="store_true", help="let transformers fetch a hub base model")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for bad input, printed as one line)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if argv[:1] == ["merge"]:
            args = build_merge_parser().parse_args(argv[1:])
            out = merge_adapter(args.adapter, args.out, args.base_model, args.dtype, args.allow_download)
            print(f"merged model written to {out}")
            return 0
        args = build_parser().parse_args(argv)
        if args.stop_after is not None and args.stop_after < 1:
            raise InputError("--stop-after must be >= 1")
        output_dir = str(Path(args.output_dir).expanduser().resolve()) if args.output_dir else None
        overrides = {k: v for k, v in {"train.max_steps": args.max_steps, "output_dir": output_dir,
                                       "train.device": args.device}.items() if v is not None}
        cfg = load_config(args.config, overrides)
        result = train(cfg, resume=args.resume, stop_after=args.stop_after)
    except SpatialError as err:
        print(f"spatial_vlm finetune: {err}", file=sys.stderr)
        return 2
    where = f"adapter in {result.adapter_dir}" if result.adapter_dir else "checkpoint written; continue with --resume"
    print(f"finetune: step {result.step}/{result.total_steps}; {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

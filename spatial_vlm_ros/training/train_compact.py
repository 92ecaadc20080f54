"""Training the compact spatial VLM from scratch on CPU: ``spatial_vlm train --preset compact-cpu --out DIR``.

A preset (``models/<name>.yaml``: ``model`` = :class:`~spatial_vlm_ros.training.compact.CompactConfig`,
``data`` = :class:`DataConfig`, ``train`` = :class:`TrainConfig`) fixes everything; the run is reproducible
from its command and seed. Steps:

1. Data: the synthesised training scenes of ``seed`` and held-out scenes of ``seed + 1`` (the synthesis
   package's analytic source -> lifting -> templates), written once to ``--data DIR`` (``train/`` and
   ``eval/``, Hugging Face datasets in the issue-11 schema) and reused on later runs.
2. Tokenizer: byte-level BPE learned on the training questions and answers.
3. Model: :func:`~spatial_vlm_ros.training.compact.build_compact` (random init from ``seed``).
4. Loop: AdamW, linear warm-up then cosine decay, gradient clipping; rows in a fresh permutation per epoch
   drawn from ``(seed, epoch)`` (so a resumed run sees the rows the uninterrupted one would); labels on the
   answer tokens only (:class:`~spatial_vlm_ros.training.vqa_data.VQACollator`).
5. Logs: JSON lines in ``DIR/train_log.jsonl`` (``{"type": "train", step, epoch, loss, lr, elapsed_s}``
   and ``{"type": "eval", step, eval_loss, exact_match: {kind: fraction}, n: {kind: rows}}``).
6. Checkpoints (``DIR/checkpoint/``: weights, optimiser, scheduler, step) every ``checkpoint_every``
   steps and when a ``--minutes`` budget runs out; ``--resume`` continues from it.
7. The final model is saved to ``DIR`` as a transformers directory, with ``DIR/training.json`` (preset,
   seed, command, data counts, parameter counts, steps, last evaluation).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.training.compact import (
    CompactConfig,
    build_compact,
    count_parameters,
    save_compact,
    train_tokenizer,
)
from spatial_vlm_ros.training.vqa_data import normalise_answer, rows_of

PRESET_DIR = Path(__file__).resolve().parents[2] / "models"
LOG_NAME = "train_log.jsonl"
CHECKPOINT = "checkpoint"


@dataclass(frozen=True)
class DataConfig:
    """Synthesised data: ``scenes`` training scenes (seed ``seed``), ``eval_scenes`` held out (``seed + 1``),
    rendered ``width`` x ``height`` px by the synthesis ``source``; at least ``min_rows`` training rows;
    ``engine`` ``local`` or ``ray`` with ``workers`` (``synthesis.local.synthesize_to_disk``).
    ``describe_scenes`` > 0: the describe questions come from that many training scenes (a ``describe/``
    split of describe questions only, scenes 0 .. describe_scenes - 1 of the seed, so it includes the
    ``scenes`` of the main split, which then holds the other kinds only): many more distinct images for the
    question the What's Up evaluation asks, at ~5 rows per scene instead of ~150.
    ``order_scenes`` > 0: ordering questions ("Name the objects from left to right.", kind ``order``,
    :mod:`~spatial_vlm_ros.training.order_data`) from that many training scenes of the seed (``order/``) and
    from the ``eval_scenes`` held-out scenes (``eval_order/``)."""

    source: str = "analytic"
    scenes: int = 4000
    eval_scenes: int = 100
    width: int = 96
    height: int = 72
    min_rows: int = 50000
    engine: str = "local"
    workers: int = 1
    describe_scenes: int = 0
    order_scenes: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: ``lr`` peak, linear warm-up over ``warmup_steps``, cosine to ``lr * min_lr_ratio`` at the
    last step; ``max_steps`` 0 = ``epochs`` over the data; ``minutes`` 0 = no wall-clock budget.
    ``kind_weights`` (``{kind: weight}``, e.g. describe / metric / yes_no / choice): each batch is drawn with
    replacement so that a kind's share of the rows seen is its weight's share (kinds not named get 0);
    None = every row once per epoch in a shuffled order. ``vision_lr_scale`` multiplies the lr of the vision
    tower and projector. ``hflip``: the probability that a training row is mirrored left-right, with "left"
    and "right" swapped in its question and answer (:func:`mirror_row`)."""

    batch_size: int = 32
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 200
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    epochs: float = 2.0
    max_steps: int = 0
    minutes: float = 0.0
    log_every: int = 25
    eval_every: int = 500
    eval_rows: int = 256
    generate_rows: int = 32
    checkpoint_every: int = 500
    kind_weights: dict | None = None
    vision_lr_scale: float = 1.0
    hflip: float = 0.0


@dataclass(frozen=True)
class Preset:
    name: str
    model: CompactConfig
    data: DataConfig
    train: TrainConfig

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model.to_dict(), "data": asdict(self.data),
                "train": asdict(self.train)}


def _section(cls, data: dict | None, where: str):
    data = dict(data or {})
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
    return cls(**data)


def preset_path(name: str) -> Path:
    """``name`` as a YAML path, or ``models/<name>.yaml`` of the source tree / the installed share folder."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise InputError(f"preset file {p} does not exist")
        return p
    candidates = [PRESET_DIR / f"{name}.yaml"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("spatial_vlm_ros")) / "models" / f"{name}.yaml")
    except Exception:   # noqa: BLE001 - no ROS index: the source tree only
        pass
    for c in candidates:
        if c.is_file():
            return c
    raise InputError(f"unknown preset {name!r} (looked for {', '.join(map(str, candidates))})")


def load_preset(name: str) -> Preset:
    """Read and validate a preset (see the module doc). Raises InputError for unknown keys or bad values."""
    import yaml

    path = preset_path(name)
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    unknown = sorted(set(raw) - {"model", "data", "train"})
    if unknown:
        raise InputError(f"preset {path}: unknown sections {unknown}; known: data, model, train")
    preset = Preset(Path(name).stem, CompactConfig.from_dict(raw.get("model")),
                    _section(DataConfig, raw.get("data"), f"preset {path} data"),
                    _section(TrainConfig, raw.get("train"), f"preset {path} train"))
    validate_train(preset.train)
    validate_data(preset.data)
    return preset


def validate_data(d: DataConfig) -> None:
    if d.scenes < 1 or d.eval_scenes < 1:
        raise InputError("data scenes and eval_scenes must be at least 1")
    if d.describe_scenes < 0 or d.order_scenes < 0:
        raise InputError("data describe_scenes and order_scenes must be >= 0")
    if d.describe_scenes and d.describe_scenes < d.scenes:
        raise InputError(f"data describe_scenes ({d.describe_scenes}) must be 0 or at least scenes ({d.scenes}), "
                         "or some training scenes would lose their describe questions")


def validate_train(t: TrainConfig) -> None:
    if t.batch_size < 1:
        raise InputError("train batch_size must be at least 1")
    if not (t.lr > 0 and math.isfinite(t.lr)):
        raise InputError(f"train lr must be a positive number, got {t.lr}")
    if not (t.vision_lr_scale > 0 and math.isfinite(t.vision_lr_scale)):
        raise InputError(f"train vision_lr_scale must be a positive number, got {t.vision_lr_scale}")
    if not 0 <= t.min_lr_ratio <= 1:
        raise InputError("train min_lr_ratio must be in [0, 1]")
    if not 0 <= t.hflip <= 1:
        raise InputError(f"train hflip must be a probability in [0, 1], got {t.hflip}")
    if t.max_steps < 0 or t.minutes < 0 or t.epochs <= 0:
        raise InputError("train max_steps and minutes must be >= 0 and epochs > 0")
    for name in ("log_every", "eval_every", "checkpoint_every"):
        if getattr(t, name) < 1:
            raise InputError(f"train {name} must be at least 1")


# -- data ---------------------------------------------------------------------------------------------------
EVAL_SPLITS = ("eval", "eval_order")


def split_plan(data: DataConfig, seed: int) -> dict[str, tuple[int, int, tuple[str, ...] | None]]:
    """``{split: (scenes, seed, kinds or None for all)}`` of the data directory (see :class:`DataConfig`);
    kinds ``("order",)`` are :mod:`~spatial_vlm_ros.training.order_data`'s questions, the others the
    synthesis package's. Splits named in :data:`EVAL_SPLITS` are held out."""
    from spatial_vlm_ros.synthesis.schema import KINDS

    plan: dict[str, tuple[int, int, tuple[str, ...] | None]] = {}
    if not data.describe_scenes:
        plan["train"] = (data.scenes, seed, None)
    else:
        plan["train"] = (data.scenes, seed, tuple(k for k in KINDS if k != "describe"))
        plan["describe"] = (data.describe_scenes, seed, ("describe",))
    plan["eval"] = (data.eval_scenes, seed + 1, None)
    if data.order_scenes:
        plan["order"] = (data.order_scenes, seed, ("order",))
        plan["eval_order"] = (data.eval_scenes, seed + 1, ("order",))
    return plan


def concat_splits(parts: list):
    """The rows of several datasets, keeping the columns they all have (the order questions carry fewer
    provenance columns than the synthesised ones)."""
    import datasets

    if len(parts) == 1:
        return parts[0]
    common = [c for c in parts[0].column_names if all(c in p.column_names for p in parts)]
    parts = [p.select_columns(common) for p in parts]
    try:
        parts = [parts[0]] + [p.cast(parts[0].features) for p in parts[1:]]
        return datasets.concatenate_datasets(parts)
    except (ValueError, TypeError) as err:
        raise InputError(f"cannot join the data splits: {str(err).splitlines()[0]}") from None


def synthesize_split(data: DataConfig, n_scenes: int, seed: int, out: Path,
                     kinds: tuple[str, ...] | None = None) -> None:
    """Synthesise ``n_scenes`` scenes of ``seed`` from the synthesis package's source into ``out`` (question
    ``kinds`` only, when given)."""
    from spatial_vlm_ros.synthesis.local import synthesize_to_disk
    from spatial_vlm_ros.synthesis.templates import SynthesisConfig

    if kinds == ("order",):
        from spatial_vlm_ros.training.order_data import write_order_dataset

        if data.source != "analytic":
            raise InputError("order questions need the analytic source (its simulator truth)")
        write_order_dataset(n_scenes, seed, data.width, data.height, out)
        return
    synthesis = SynthesisConfig(kinds=tuple(kinds)) if kinds else None
    synthesize_to_disk(data.source, n_scenes, seed, out, engine=data.engine, workers=data.workers,
                       width=data.width, height=data.height, synthesis=synthesis)


def prepare_data(preset: Preset, seed: int, data_dir: Path, log=print):
    """``(train, eval)`` datasets from ``data_dir/train`` and ``data_dir/eval``, synthesised there first when
    absent (``data_dir/data.json`` records what was synthesised; a mismatch with the preset is refused)."""
    from spatial_vlm_ros.training.vqa_data import load_vqa_datasets

    data_dir = Path(data_dir).expanduser()
    want = {"data": asdict(preset.data), "train_seed": seed, "eval_seed": seed + 1}
    stamp = data_dir / "data.json"
    if stamp.is_file():
        have = json.loads(stamp.read_text())
        if have != want:
            raise InputError(f"{data_dir} holds data synthesised with other settings ({have}); "
                             "give another --data directory")
    splits = split_plan(preset.data, seed)
    missing = [k for k in splits if not (data_dir / k).is_dir()]
    if missing:
        if any((data_dir / k).is_dir() for k in splits) and not stamp.is_file():
            raise InputError(f"{data_dir} has only some of {', '.join(splits)}; remove it or complete it")
        data_dir.mkdir(parents=True, exist_ok=True)
        for k in missing:
            n, s, kinds = splits[k]
            t0 = time.perf_counter()
            synthesize_split(preset.data, n, s, data_dir / k, kinds)
            log(f"synthesised {k}: {n} scenes of seed {s}{' (' + ', '.join(kinds) + ')' if kinds else ''} "
                f"in {time.perf_counter() - t0:.0f} s")
        stamp.write_text(json.dumps(want, indent=1))
    train_ds = concat_splits([load_vqa_datasets(data_dir / k) for k in splits if k not in EVAL_SPLITS])
    eval_ds = concat_splits([load_vqa_datasets(data_dir / k) for k in splits if k in EVAL_SPLITS])
    if len(train_ds) < preset.data.min_rows:
        raise InputError(f"{data_dir / 'train'} has {len(train_ds)} rows, fewer than the preset's min_rows "
                         f"{preset.data.min_rows}")
    if len(eval_ds) == 0:
        raise InputError(f"{data_dir / 'eval'} has no rows")
    return train_ds, eval_ds


def epoch_order(n_rows: int, seed: int, epoch: int) -> np.ndarray:
    """The row permutation of ``epoch`` (deterministic in ``seed`` and ``epoch``)."""
    return np.random.default_rng([seed, epoch]).permutation(n_rows)


class BatchSampler:
    """Row indices of each step's batch, a pure function of ``(seed, step)`` (a resumed run draws the same
    batches): shuffled epochs, or draws weighted by kind (see :class:`TrainConfig`)."""

    def __init__(self, ds, batch_size: int, seed: int, kind_weights: dict | None = None):
        self.n, self.bs, self.seed = len(ds), batch_size, seed
        self.steps_per_epoch = self.n // batch_size
        self.cdf = None
        if kind_weights:
            kinds = np.asarray(list(ds["kind"]))
            weights = {str(k): float(v) for k, v in kind_weights.items()}
            if any(v < 0 for v in weights.values()) or not any(v > 0 for v in weights.values()):
                raise InputError(f"kind_weights must be >= 0 with one > 0, got {kind_weights}")
            counts = {k: int((kinds == k).sum()) for k in weights}
            missing = [k for k, v in weights.items() if v > 0 and counts[k] == 0]
            if missing:
                raise InputError(f"kind_weights name kinds with no rows: {missing}")
            p = np.array([weights.get(k, 0.0) / counts[k] if k in counts and counts[k] else 0.0 for k in kinds])
            self.cdf = np.cumsum(p / p.sum())

    def __call__(self, step: int) -> np.ndarray:
        if self.cdf is not None:
            u = np.random.default_rng([self.seed, 7, step]).random(self.bs)
            return np.minimum(np.searchsorted(self.cdf, u, side="right"), self.n - 1)
        epoch, within = divmod(step, self.steps_per_epoch)
        return epoch_order(self.n, self.seed, epoch)[within * self.bs:(within + 1) * self.bs]


_SIDE = re.compile(r"\b(left|right)(most)?\b", re.IGNORECASE)


def swap_sides(text: str) -> str:
    """``text`` with the words "left" and "right" (and "leftmost" / "rightmost") exchanged, case kept: the
    wording of a mirrored image."""
    def other(m: re.Match) -> str:
        word = ("right" if m.group(1).lower() == "left" else "left") + (m.group(2) or "").lower()
        return word.capitalize() if m.group(0)[0].isupper() else word

    return _SIDE.sub(other, text)


def mirror_row(row: dict) -> dict:
    """A training row mirrored left-right: the image flipped horizontally, "left" and "right" swapped in the
    question and the answer. Everything else the templates ask (in front / behind, on / under, heights,
    sizes, distances) is unchanged by the mirror, since the camera looks straight along its axis."""
    from PIL import ImageOps

    from spatial_vlm_ros.training.vqa_data import row_image

    return {**row, "image": ImageOps.mirror(row_image(row["image"])), "question": swap_sides(row["question"]),
            "answer": swap_sides(row["answer"])}


def augment(rows: list[dict], p: float, seed: int, step: int) -> list[dict]:
    """``rows`` with each mirrored (:func:`mirror_row`) with probability ``p``, drawn from ``(seed, step)``."""
    if p <= 0:
        return rows
    flips = np.random.default_rng([seed, 11, step]).random(len(rows)) < p
    return [mirror_row(r) if f else r for r, f in zip(rows, flips)]


def eval_selection(eval_ds, t: TrainConfig, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fixed held-out rows: ``eval_rows`` for the loss and up to ``generate_rows`` per kind for exact match."""
    order = np.random.default_rng([seed, 10**6]).permutation(len(eval_ds))
    loss_rows = order[:t.eval_rows]
    kinds = np.asarray(list(eval_ds["kind"])) if "kind" in eval_ds.column_names else np.full(len(eval_ds), "all")
    per_kind = {str(k): order[kinds[order] == k][:t.generate_rows] for k in sorted(set(kinds.tolist()))}
    return loss_rows, per_kind


# -- schedule and loop --------------------------------------------------------------------------------------
def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak lr at ``step`` (0-based): linear warm-up, then cosine down to ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def machine_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def evaluate_rows(model, collator, eval_ds, loss_rows, per_kind, batch_size: int) -> dict:
    """Eval loss (mean over answer tokens of ``loss_rows``) and greedy exact match per kind."""
    import torch

    model.eval()
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(loss_rows), batch_size):
            batch = collator(rows_of(eval_ds, loss_rows[i:i + batch_size]))
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            tokens += n
        exact, counts = {}, {}
        for kind, idx in per_kind.items():
            hits = 0
            for i in range(0, len(idx), batch_size):
                rows = rows_of(eval_ds, idx[i:i + batch_size])
                prompt = collator.prompt_batch(rows)
                out = model.generate(**prompt, max_new_tokens=24, do_sample=False,
                                     pad_token_id=collator.tokenizer.pad_token_id)
                texts = collator.tokenizer.batch_decode(out[:, prompt["input_ids"].shape[1]:],
                                                        skip_special_tokens=True)
                hits += sum(normalise_answer(t) == normalise_answer(r["answer"]) for t, r in zip(texts, rows))
            exact[kind], counts[kind] = (hits / len(idx) if len(idx) else float("nan")), int(len(idx))
    model.train()
    return {"eval_loss": total / max(tokens, 1), "exact_match": exact, "n": counts}


def _save_checkpoint(out: Path, model, processor, optimizer, scheduler, state: dict) -> None:
    import torch

    ck = out / CHECKPOINT
    tmp = out / (CHECKPOINT + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), **state}, tmp / "state.pt")
    processor.save_pretrained(tmp / "processor")
    if ck.exists():
        import shutil

        shutil.rmtree(ck)
    tmp.rename(ck)


def _check_out(out: Path, resume: bool) -> Path:
    state = out / CHECKPOINT / "state.pt"
    if resume and not state.is_file():
        raise InputError(f"nothing to resume: {state} does not exist")
    if not resume and state.is_file():
        raise InputError(f"{out} already holds a training checkpoint; pass --resume or choose another --out")
    return state


@dataclass
class _Run:
    """What the loop updates: model, processor, optimiser, scheduler and the number of steps done."""

    model: object
    processor: object
    optimizer: object
    scheduler: object
    step: int = 0


def _build_run(preset: Preset, seed: int, total: int, train_ds, state_path: Path | None) -> _Run:
    """A fresh run (tokenizer learned on the training text), or the one saved at ``state_path``."""
    import torch
    from transformers import AutoProcessor

    t = preset.train
    saved = None
    if state_path is not None:
        saved = torch.load(state_path, map_location="cpu", weights_only=False)
        if saved["preset"] != preset.to_dict() or saved["seed"] != seed or saved["total_steps"] != total:
            raise InputError(f"the checkpoint {state_path} was made with another preset, seed or step count")
        processor = AutoProcessor.from_pretrained(state_path.parent / "processor", local_files_only=True)
        model, _ = build_compact(preset.model, processor.tokenizer, seed=seed)
    else:
        texts = list(train_ds["question"]) + list(train_ds["answer"])
        model, processor = build_compact(preset.model, train_tokenizer(texts, preset.model.vocab_size), seed=seed)
    vision = {id(p) for p in model.model.vision_tower.parameters()} | {
        id(p) for p in model.model.multi_modal_projector.parameters()}
    groups = []
    for is_vision, scale in ((False, 1.0), (True, t.vision_lr_scale)):
        params = [p for p in model.parameters() if (id(p) in vision) == is_vision]
        groups += [{"params": [p for p in params if p.ndim >= 2], "weight_decay": t.weight_decay, "lr": t.lr * scale},
                   {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0, "lr": t.lr * scale}]
    optimizer = torch.optim.AdamW(groups, lr=t.lr, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, t.warmup_steps, total, t.min_lr_ratio))
    run = _Run(model, processor, optimizer, scheduler)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        run.step = int(saved["step"])
    return run


def _optimiser_step(run: _Run, batch: dict, grad_clip: float) -> float:
    import torch

    loss = run.model(**batch).loss
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), grad_clip)
    run.optimizer.step()
    run.scheduler.step()
    run.step += 1
    return loss.item()


def _append(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def train(preset: Preset, out: str | Path, seed: int = 0, data_dir: str | Path | None = None,
          resume: bool = False, minutes: float | None = None, max_steps: int | None = None,
          log=print, datasets_=None) -> dict:
    """Train ``preset`` into ``out`` (see the module doc); returns the summary written to ``training.json``.

    ``minutes``/``max_steps`` override the preset's. ``datasets_``: ``(train, eval)`` datasets to use instead
    of ``data_dir`` (tests). Raises InputError for bad settings or data.
    """
    import torch

    from spatial_vlm_ros.training.vqa_data import VQACollator

    out = Path(out).expanduser()
    t = preset.train
    minutes = t.minutes if minutes is None else minutes
    max_steps = t.max_steps if max_steps is None else max_steps
    if minutes < 0 or max_steps < 0:
        raise InputError("--minutes and --max-steps must be >= 0")
    state_path = _check_out(out, resume)
    threads = machine_threads()
    torch.set_num_threads(threads)
    if datasets_ is None:
        data_dir = Path(data_dir) if data_dir else out.parent / f"{out.name}.data"
        train_ds, eval_ds = prepare_data(preset, seed, data_dir, log)
    else:
        train_ds, eval_ds = datasets_
    bs = t.batch_size
    if len(train_ds) < bs:
        raise InputError(f"{len(train_ds)} training rows are fewer than one batch of {bs}")
    steps_per_epoch = len(train_ds) // bs
    total = max_steps or max(1, int(round(t.epochs * steps_per_epoch)))
    run = _build_run(preset, seed, total, train_ds, state_path if resume else None)
    collator = VQACollator(run.processor)
    sampler = BatchSampler(train_ds, bs, seed, t.kind_weights)
    loss_rows, per_kind = eval_selection(eval_ds, t, seed)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / LOG_NAME
    params = count_parameters(run.model)
    log(f"compact model: {params['total'] / 1e6:.2f} M parameters ({params}); {len(train_ds)} training rows, "
        f"{len(eval_ds)} held out; {total} steps of {bs} ({total * bs / len(train_ds):.2f} epochs); "
        f"{threads} threads; {'resuming at step ' + str(run.step) if run.step else 'from scratch'}")
    run.model.train()
    start = time.perf_counter()
    losses, last_eval, stopped = [], None, "steps"
    while run.step < total:
        rows = augment(rows_of(train_ds, sampler(run.step)), t.hflip, seed, run.step)
        losses.append(_optimiser_step(run, collator(rows), t.grad_clip))
        step, elapsed = run.step, time.perf_counter() - start
        if step % t.log_every == 0 or step == total:
            rec = {"type": "train", "step": step, "epoch": round(step / steps_per_epoch, 4),
                   "loss": float(np.mean(losses)), "lr": run.scheduler.get_last_lr()[0],
                   "elapsed_s": round(elapsed, 1)}
            _append(log_path, rec)
            log(f"step {step}/{total} loss {rec['loss']:.4f} lr {rec['lr']:.2e} {elapsed:.0f} s")
            losses = []
        over_budget = minutes > 0 and elapsed >= minutes * 60
        if step % t.eval_every == 0 or step == total or over_budget:
            last_eval = {"type": "eval", "step": step,
                         **evaluate_rows(run.model, collator, eval_ds, loss_rows, per_kind, bs)}
            _append(log_path, last_eval)
            em = ", ".join(f"{k} {v:.2f}" for k, v in last_eval["exact_match"].items())
            log(f"eval step {step}: loss {last_eval['eval_loss']:.4f}; exact match {em}")
        if step % t.checkpoint_every == 0 or step == total or over_budget:
            _save_checkpoint(out, run.model, run.processor, run.optimizer, run.scheduler,
                             {"step": step, "seed": seed, "preset": preset.to_dict(), "total_steps": total})
        if over_budget and step < total:
            stopped = f"time budget of {minutes:g} min"
            break
    run.model.eval()
    save_compact(run.model, run.processor, out)
    summary = {"preset": preset.to_dict(), "seed": seed, "command": " ".join(sys.argv),
               "train_seeds": [seed], "eval_seeds": [seed + 1],
               "rows": {"train": len(train_ds), "eval": len(eval_ds)}, "parameters": params,
               "steps": run.step, "total_steps": total, "batch_size": bs,
               "epochs_done": run.step * bs / len(train_ds), "stopped_by": stopped, "complete": run.step >= total,
               "threads": threads, "elapsed_s_last_run": round(time.perf_counter() - start, 1),
               "last_eval": last_eval}
    (out / "training.json").write_text(json.dumps(summary, indent=1, default=float))
    log(f"saved the model to {out} after {run.step} steps ({stopped})")
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spatial_vlm train",
                                description="train the compact spatial VLM from scratch on synthesised QA")
    p.add_argument("--preset", default="compact-cpu", help="preset name (models/<name>.yaml) or a YAML path")
    p.add_argument("--out", required=True, help="output model directory (transformers layout)")
    p.add_argument("--seed", type=int, default=0, help="training seed (data: seed and seed + 1; init; order)")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget; stops cleanly and saves")
    p.add_argument("--max-steps", type=int, default=None, help="optimiser steps (overrides the preset's)")
    p.add_argument("--data", default=None, help="synthesised data cache (default: <out>.data next to --out)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        train(load_preset(args.preset), args.out, seed=args.seed, data_dir=args.data, resume=args.resume,
              minutes=args.minutes, max_steps=args.max_steps)
    except InputError as err:
        print(f"spatial_vlm train: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

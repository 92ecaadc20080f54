"""Spatial VQA datasets -> model inputs, for any Hugging Face VLM processor (model-agnostic).

Rows follow the issue-11 dataset schema (columns ``image``, ``question``, ``answer``; the rest is provenance).
Each row becomes one chat turn built by the model's own chat template
(:func:`spatial_vlm_ros.vlm.engine.chat_messages`: image first, then the question) followed by the answer:

* the prompt (template with the generation prompt, image placeholders expanded by the processor) is
  tokenised exactly as the engines tokenise it at inference time;
* the answer is the text the template writes after the prompt for an assistant turn, tokenised on its own and
  appended, so prompt tokens are never merged with answer tokens;
* ``labels`` are ``-100`` (ignored) everywhere except the answer tokens and the end-of-turn token that closes
  them (the first special token after the answer, e.g. ``<|im_end|>``), which teaches the model to stop.

Batches are right-padded (``labels`` -100 and ``attention_mask`` 0 on padding). Nothing is truncated: a row
longer than ``max_length`` tokens raises :class:`InputError`, since cutting it would cut the answer or the
image tokens.
"""
from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm.engine import chat_messages

#: Columns a VQA row must have; the other columns of the schema are carried along but not used here.
REQUIRED_COLUMNS = ("image", "question", "answer")
#: Label value ignored by the loss (PyTorch cross-entropy's default ``ignore_index``).
IGNORE_INDEX = -100


# -- datasets on disk ---------------------------------------------------------------------------------------
def load_vqa_datasets(dirs: Sequence[str | Path] | str | Path):
    """The rows of one or more ``datasets.Dataset.save_to_disk`` directories, concatenated in order.

    Raises InputError for no directory, a missing one, one that is not a saved dataset, or one lacking any of
    :data:`REQUIRED_COLUMNS`.
    """
    import datasets

    if isinstance(dirs, (str, Path)):
        dirs = [dirs]
    if not dirs:
        raise InputError("no dataset directory given")
    parts = []
    for d in dirs:
        path = Path(d).expanduser()
        if not path.is_dir():
            raise InputError(f"dataset directory {path} does not exist")
        try:
            ds = datasets.load_from_disk(str(path))
        except (FileNotFoundError, ValueError, OSError) as err:
            raise InputError(f"{path} is not a saved Hugging Face dataset: {str(err).splitlines()[0]}") from None
        if isinstance(ds, datasets.DatasetDict):
            raise InputError(f"{path} holds a DatasetDict ({', '.join(ds)}); give one split's directory")
        missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
        if missing:
            raise InputError(f"dataset {path} lacks the column(s) {', '.join(missing)}")
        parts.append(ds)
    if len(parts) == 1:
        return parts[0]
    try:
        return datasets.concatenate_datasets(parts)
    except ValueError as err:
        raise InputError(f"datasets {', '.join(map(str, dirs))} have different columns or types: "
                         f"{str(err).splitlines()[0]}") from None


def rows_of(ds, indices: Sequence[int]) -> list[dict]:
    """Rows ``indices`` of a dataset as dicts (images decoded), in that order."""
    batch = ds[[int(i) for i in indices]]
    keys = list(batch)
    return [dict(zip(keys, values)) for values in zip(*(batch[k] for k in keys))]


def normalise_answer(text: str) -> str:
    """Lower case, single spaces, no trailing full stop: the form exact match compares."""
    return " ".join(text.strip().lower().split()).rstrip(".").strip()


def hash_fraction(key: str, seed: int = 0) -> float:
    """A stable number in [0, 1) from ``key`` (and ``seed``): the same row lands in the same split on every
    machine and run, whatever the row order."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def split_by_hash(ds, eval_fraction: float, key: str = "sample_id", seed: int = 0):
    """``(train, eval)``: rows whose ``hash_fraction(row[key], seed) < eval_fraction`` go to eval."""
    if not 0.0 <= eval_fraction < 1.0:
        raise InputError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    if key not in ds.column_names:
        raise InputError(f"cannot split by hash of {key!r}: the dataset has no such column")
    is_eval = np.array([hash_fraction(str(k), seed) < eval_fraction for k in ds[key]], dtype=bool)
    return ds.select(np.flatnonzero(~is_eval)), ds.select(np.flatnonzero(is_eval))


def split_by_column(ds, column: str, eval_values: Sequence[Any]):
    """``(train, eval)``: rows whose ``column`` is one of ``eval_values`` go to eval (e.g. by ``source``)."""
    if column not in ds.column_names:
        raise InputError(f"cannot split by column {column!r}: the dataset has no such column")
    wanted = set(eval_values)
    is_eval = np.array([v in wanted for v in ds[column]], dtype=bool)
    return ds.select(np.flatnonzero(~is_eval)), ds.select(np.flatnonzero(is_eval))


# -- rows -> model inputs -----------------------------------------------------------------------------------
def row_image(value):
    """A row's image as an RGB PIL image: a PIL image (what ``datasets.Image()`` decodes to), an (H, W, 3)
    uint8 array, or an undecoded ``{"bytes": ..., "path": ...}`` dict. None stays None (text-only row)."""
    from PIL import Image

    if value is None:
        return None
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        if value.get("bytes"):
            return Image.open(io.BytesIO(value["bytes"])).convert("RGB")
        if value.get("path"):
            return Image.open(value["path"]).convert("RGB")
        raise InputError("image entry has neither bytes nor a path")
    arr = np.asarray(value)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise InputError(f"image must be (H, W, 3) uint8 RGB, got {arr.shape} {arr.dtype}")
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")


@dataclass
class VQACollator:
    """Turns VQA rows (dicts with ``image``, ``question``, ``answer``) into a model batch with answer-only labels.

    ``processor``: the model's Hugging Face processor (its tokenizer and chat template are used).
    ``max_length``: longest allowed sequence in tokens (image tokens included); None = no limit.
    Use as a ``torch.utils.data.DataLoader`` ``collate_fn``; :meth:`prompt_batch` gives the left-padded
    prompts for generation (greedy evaluation).
    """

    processor: Any
    max_length: int | None = None

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    # -- text -------------------------------------------------------------------------------------------
    def prompt_text(self, question: str, with_image: bool) -> str:
        """The chat-formatted prompt (with image placeholder and generation prompt), as the engines build it."""
        return self.processor.apply_chat_template(chat_messages(question, with_image), add_generation_prompt=True,
                                                  tokenize=False)

    def answer_text(self, question: str, answer: str, with_image: bool, prompt: str | None = None) -> str:
        """What the chat template writes after the prompt for the assistant turn ``answer`` (the answer and
        the end-of-turn marker). Falls back to ``answer + eos_token`` for templates whose full chat does not
        start with the generation prompt."""
        prompt = self.prompt_text(question, with_image) if prompt is None else prompt
        turn = chat_messages(question, with_image) + [
            {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
        full = self.processor.apply_chat_template(turn, tokenize=False)
        if full.startswith(prompt) and answer.strip() in full[len(prompt):]:
            return full[len(prompt):]
        return answer + (self.tokenizer.eos_token or "")

    # -- batches ----------------------------------------------------------------------------------------
    def _rows(self, rows: Sequence[dict]):
        if len(rows) == 0:
            raise InputError("no rows to collate")
        questions, answers, images = [], [], []
        for row in rows:
            q, a = row.get("question"), row.get("answer")
            if not isinstance(q, str) or not q.strip():
                raise InputError(f"row {row.get('sample_id', '?')} has an empty question")
            if not isinstance(a, str) or not a.strip():
                raise InputError(f"row {row.get('sample_id', '?')} has an empty answer")
            questions.append(q.strip())
            answers.append(a.strip())
            images.append(row_image(row.get("image")))
        with_image = {img is not None for img in images}
        if len(with_image) > 1:
            raise InputError("a batch must be all image rows or all text-only rows")
        return questions, answers, (images if with_image.pop() else None)

    def _process(self, texts: list[str], images: list | None, padding_side: str):
        self.tokenizer.padding_side = padding_side
        kwargs = {"text": texts, "return_tensors": "pt", "padding": True}
        if images is not None:
            kwargs["images"] = images
        return dict(self.processor(**kwargs))

    def prompt_batch(self, rows: Sequence[dict]) -> dict:
        """Left-padded prompt inputs of ``rows`` (answers are not included) for ``model.generate``."""
        questions, _, images = self._rows(rows)
        return self._process([self.prompt_text(q, images is not None) for q in questions], images, "left")

    def __call__(self, rows: Sequence[dict]) -> dict:
        """Right-padded ``input_ids``, ``attention_mask``, ``labels`` (B, S) int64 tensors plus the
        processor's image tensors (``pixel_values`` ...)."""
        import torch

        questions, answers, images = self._rows(rows)
        with_image = images is not None
        prompts = [self.prompt_text(q, with_image) for q in questions]
        batch = self._process(prompts, images, "right")
        ids, mask = batch.pop("input_ids"), batch.pop("attention_mask")
        per_token = {k: v for k, v in batch.items() if torch.is_tensor(v) and v.shape == ids.shape}
        specials = set(self.tokenizer.all_special_ids)
        seqs, labels, extras = [], [], {k: [] for k in per_token}
        for i, (q, a, p) in enumerate(zip(questions, answers, prompts)):
            n = int(mask[i].sum())
            head = ids[i, :n].tolist()
            tail = self.tokenizer(self.answer_text(q, a, with_image, p), add_special_tokens=False)["input_ids"]
            end = next((j + 1 for j, t in enumerate(tail) if t in specials), len(tail))
            seq = head + tail
            if self.max_length is not None and len(seq) > self.max_length:
                raise InputError(f"row {rows[i].get('sample_id', i)} has {len(seq)} tokens, more than "
                                 f"max_length {self.max_length}")
            seqs.append(seq)
            labels.append([IGNORE_INDEX] * n + tail[:end] + [IGNORE_INDEX] * (len(tail) - end))
            for k, v in per_token.items():
                extras[k].append(v[i, :n].tolist() + [0] * len(tail))
        width = max(len(s) for s in seqs)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

        def padded(rows_: list[list[int]], value: int):
            return torch.tensor([r + [value] * (width - len(r)) for r in rows_], dtype=torch.long)

        out = {"input_ids": padded(seqs, pad_id), "attention_mask": padded([[1] * len(s) for s in seqs], 0),
               "labels": padded(labels, IGNORE_INDEX)}
        out.update({k: padded(v, 0).to(per_token[k].dtype) for k, v in extras.items()})
        out.update({k: v for k, v in batch.items() if k not in per_token})
        return out

"""The learned-parts commands of ``spatial_vlm``: ``make-tiny-models``, ``export-onnx --part``,
``fetch-models``. Each part is a module of ``perception.learned_parts.PART_MODULES`` (its protocol)."""
from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.perception.learned_parts import PART_MODULES, part_module

#: What ``fetch-models`` downloads: configs, safetensors weights, tokenizer/processor files; never pickles.
FETCH_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "merges.txt", "vocab.*")
#: Largest PyTorch-vs-onnxruntime difference accepted by ``export-onnx --check`` (fp32 / fp16 graphs).
TOLERANCE = {False: 1e-3, True: 5e-2}


def _module_or_none(part: str):
    try:
        return part_module(part)
    except ImportError as err:
        print(f"skipping part {part!r}: its module {PART_MODULES[part]} is not importable ({err})")
        return None


def make_tiny_models(out: str | Path, parts=None, seed: int = 0) -> int:
    """Write ``out/<part>`` for each part (random weights: plumbing only, never accuracy)."""
    out = Path(out)
    for part in parts or list(PART_MODULES):
        module = _module_or_none(part)
        if module is None:
            continue
        path = module.save_tiny_model(out / part, seed=seed)
        print(f"{part}: {path}")
    return 0


def export_part(part: str, model: str, out: str | Path, check: bool = False, fp16: bool = False,
                tolerance: float | None = None) -> int:
    """Export one part; with ``check`` print the largest |PyTorch - onnxruntime| and return 1 above
    ``tolerance``."""
    module = part_module(part)
    path = module.export_onnx(model, out, fp16=fp16)
    print(f"exported {part} {model} -> {path}")
    if not check:
        return 0
    tol = TOLERANCE[bool(fp16)] if tolerance is None else float(tolerance)
    diff = float(module.check_onnx(model, path))
    ok = diff <= tol
    print(f"{part}: max abs difference PyTorch vs onnxruntime = {diff:.3g} (tolerance {tol:g}): "
          f"{'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


def fetch_plan(part: str | None = None, model: str | None = None) -> list[tuple[str, str]]:
    """``(part, model id)`` pairs that ``fetch-models`` would download."""
    if model and not part:
        raise InputError("--model needs --part (which part the model is for)")
    if part and part not in PART_MODULES:
        raise InputError(f"unknown model part {part!r} (known: {', '.join(PART_MODULES)})")
    plan = []
    for p in [part] if part else list(PART_MODULES):
        if model:
            plan.append((p, model))
            continue
        try:
            plan.append((p, importlib.import_module(PART_MODULES[p]).DEFAULT_MODEL))
        except ImportError:
            print(f"skipping part {p!r}: its module is not importable")
    return plan


def fetch_models(part: str | None = None, model: str | None = None, cache_dir: str | None = None,
                 dry_run: bool = False) -> int:
    """Download the models of ``fetch_plan`` into the Hugging Face cache (needs internet)."""
    plan = fetch_plan(part, model)
    for p, ref in plan:
        print(f"{p}: {ref} (files {', '.join(FETCH_PATTERNS)})")
        if dry_run:
            continue
        from huggingface_hub import snapshot_download

        os.environ["HF_HUB_OFFLINE"] = "0"
        path = snapshot_download(ref, allow_patterns=list(FETCH_PATTERNS), cache_dir=cache_dir)
        print(f"  -> {path}")
    return 0


def export_main(argv: list[str]) -> int:
    """``export-onnx --part P --model ID_OR_DIR --out DIR [--check] [--fp16] [--tolerance T]``."""
    p = argparse.ArgumentParser(prog="spatial_vlm export-onnx --part", description="export a learned part")
    p.add_argument("--part", required=True, choices=list(PART_MODULES))
    p.add_argument("--model", required=True, help="HF id (local cache) or model directory")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--check", action="store_true", help="run PyTorch and onnxruntime on one input, compare")
    p.add_argument("--fp16", action="store_true", help="fp16 graph (fp32 inputs and outputs)")
    p.add_argument("--tolerance", type=float, default=None, help="largest accepted difference of --check")
    a = p.parse_args(argv)
    try:
        return export_part(a.part, a.model, a.out, check=a.check, fp16=a.fp16, tolerance=a.tolerance)
    except InputError as err:
        print(f"error: {err}")
        return 2


def add_subcommands(sub) -> None:
    """Add ``make-tiny-models`` and ``fetch-models`` to the ``spatial_vlm`` parser."""
    t = sub.add_parser("make-tiny-models", help="write tiny random-weight models of the learned parts "
                                                "(plumbing tests and offline end-to-end runs)")
    t.add_argument("--out", required=True)
    t.add_argument("--parts", nargs="+", choices=list(PART_MODULES), default=None)
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=lambda a: make_tiny_models(a.out, a.parts, a.seed))
    f = sub.add_parser("fetch-models", help="download the learned parts' models (needs internet)")
    f.add_argument("--part", choices=list(PART_MODULES), default=None)
    f.add_argument("--model", default=None, help="HF id (default: the part's default model)")
    f.add_argument("--cache-dir", default=None)
    f.add_argument("--dry-run", action="store_true", help="print what would be downloaded")
    f.set_defaults(func=lambda a: _guarded(fetch_models, a.part, a.model, a.cache_dir, a.dry_run))


def _guarded(fn, *args) -> int:
    try:
        return fn(*args)
    except InputError as err:
        print(f"error: {err}")
        return 2

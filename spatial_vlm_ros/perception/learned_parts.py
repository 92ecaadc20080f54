"""The learned perception parts and the modules that implement them.

Each part module exposes the same small protocol, used by ``spatial_vlm make-tiny-models``,
``spatial_vlm export-onnx --part``, ``spatial_vlm fetch-models`` and ``benchmarks/bench_perception.py``:

* ``PART`` (the part name) and ``DEFAULT_MODEL`` (HF id);
* ``save_tiny_model(directory, seed=0) -> Path``: a loadable, randomly initialised tiny model directory
  (config, safetensors weights, processor files) for tests and offline end-to-end runs; plumbing only;
* ``real_size_config()``: the transformers config of ``DEFAULT_MODEL``'s architecture at full size, written
  from its published hyper-parameters (no download), for speed benchmarks with random weights;
* ``export_onnx(model, out_dir, fp16=False) -> Path``: ONNX export of a model (HF id or directory);
* ``check_onnx(model, onnx_dir, seed=0) -> float``: the largest absolute difference between PyTorch and
  onnxruntime outputs on one input.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from spatial_vlm_ros.core.errors import InputError

PART_MODULES = {
    "detector": "spatial_vlm_ros.perception.open_vocab",
    "segmenter": "spatial_vlm_ros.perception.sam2_segmenter",
    "depth": "spatial_vlm_ros.perception.mono_depth",
}


def part_module(part: str) -> ModuleType:
    """The module implementing ``part`` (one of ``PART_MODULES``)."""
    if part not in PART_MODULES:
        raise InputError(f"unknown model part {part!r} (known: {', '.join(PART_MODULES)})")
    return importlib.import_module(PART_MODULES[part])

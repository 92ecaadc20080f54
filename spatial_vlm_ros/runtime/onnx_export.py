"""Shared ONNX export helpers of every learned part (detector, SAM 2, depth model, VLM): the exporter chatter
silenced, one ``torch.onnx.export`` call, fp16 conversion, and a NaN/inf-safe largest absolute difference."""
from __future__ import annotations

import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

OPSET = 17


@contextmanager
def quiet_export(disable_torch_checks: bool = True):
    """Silence the exporters' loggers and warnings for the block; ``disable_torch_checks`` also turns off
    transformers' ``torch._check`` asserts, which some graphs cannot export."""
    quiet = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")]
    levels = [q.level for q in quiet]
    old_check = os.environ.get("TRANSFORMERS_DISABLE_TORCH_CHECK")
    if disable_torch_checks:
        os.environ["TRANSFORMERS_DISABLE_TORCH_CHECK"] = "1"     # torch._check asserts do not export
    for q in quiet:
        q.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, UserWarning, DeprecationWarning):
                warnings.simplefilter("ignore", category)
            try:
                from torch.jit import TracerWarning
                warnings.simplefilter("ignore", TracerWarning)
            except ImportError:
                pass
            yield
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
        if old_check is None:
            os.environ.pop("TRANSFORMERS_DISABLE_TORCH_CHECK", None)
        else:
            os.environ["TRANSFORMERS_DISABLE_TORCH_CHECK"] = old_check


def export_graph(module, args: tuple, path: Path, input_names: list[str], output_names: list[str],
                 dynamic_axes: dict, opset: int = OPSET, dynamo: bool = False) -> Path:
    """Export ``module(*args)`` to ``path``; ``dynamic_axes`` ``{name: {axis: label}}`` as in
    ``torch.onnx.export``. ``dynamo=False`` (TorchScript tracer) takes seconds for these graphs;
    ``dynamo=True`` (torch.export, no graph optimiser) is needed where tracing bakes in data-dependent
    values (Grounding DINO's text masks); there only the input axes are made dynamic. Weights are stored
    inside the file."""
    import torch

    path = Path(path)
    with quiet_export():
        if dynamo:
            dims: dict[str, object] = {}        # label -> torch.export.Dim, shared by the axes so labelled
            shapes = tuple({axis: dims.setdefault(label, torch.export.Dim(label, min=2, max=4096))
                            for axis, label in dynamic_axes.get(name, {}).items()} for name in input_names)
            torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                              dynamic_shapes=shapes, opset_version=max(opset, 18), dynamo=True, optimize=False,
                              external_data=False, verbose=False)
        else:
            torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                              dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False,
                              do_constant_folding=True)
    return path


def to_fp16(path: Path) -> Path:
    """Convert an exported graph to fp16 weights/compute in place, keeping fp32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(path))
    onnx.save(convert_float_to_float16(model, keep_io_types=True), str(path))
    return path


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| where equal infinities count as 0 and a NaN in either counts as inf."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return float("inf")
    same = (a == b)                                   # covers matching +-inf
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(a - b))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max()) if diff.size else 0.0

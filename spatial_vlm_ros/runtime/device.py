"""Device and dtype choice for PyTorch models: ``auto`` means CUDA when PyTorch sees one, else the CPU;
fp16 on GPU, fp32 on the CPU."""
from __future__ import annotations

from spatial_vlm_ros.core.errors import InputError

DTYPES = ("auto", "float32", "float16", "bfloat16")


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; ``"cuda[:N]"`` checked to exist."""
    import torch

    device = (device or "auto").strip()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but PyTorch sees no CUDA device")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return device


def resolve_dtype(dtype: str, device: str):
    """``"auto"`` -> float16 on CUDA, float32 elsewhere; otherwise the named torch dtype."""
    import torch

    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)

"""onnxruntime sessions with provider priority TensorRT -> CUDA -> CPU, shared by every learned part.

Each provider is tried in turn; the reason one was skipped (not in this onnxruntime build, its libraries
missing, the session fell back) is returned and logged by the caller. TensorRT gets an engine cache
directory and fp16 engines when asked.
"""
from __future__ import annotations

from pathlib import Path

from spatial_vlm_ros.core.errors import InputError

PROVIDER_PRIORITY = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_GPU = {"TensorrtExecutionProvider", "CUDAExecutionProvider"}


def _device_id(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def create_session(path: Path, device: str = "cpu", fp16: bool = True, candidates=None, threads: int = 0,
                   cache_dir: str | Path | None = None):
    """Open ``path`` on the first provider of the priority list that works.

    ``device``: "cpu" (CPU provider only), "cuda", "cuda:N" or "auto" (the whole priority list).
    ``threads``: intra-op threads of the CPU provider (0 = onnxruntime's default, one per core).
    ``cache_dir``: TensorRT engine cache (default ``<model dir>/trt_cache``); ``fp16``: TensorRT fp16 engines.
    Returns ``(session, provider, reasons)``, ``reasons`` listing why each earlier provider was skipped.
    Raises InputError when none works.
    """
    import onnxruntime as ort

    path = Path(path)

    available = set(ort.get_available_providers())
    if candidates is None:
        candidates = ("CPUExecutionProvider",) if device == "cpu" else PROVIDER_PRIORITY
    reasons = []
    opts = ort.SessionOptions()
    opts.log_severity_level = 3        # our own log says why a provider was skipped
    opts.intra_op_num_threads = int(threads)
    for provider in candidates:
        if provider not in available:
            reasons.append(f"{provider}: not in this onnxruntime build")
            continue
        options = {}
        if provider in _GPU:
            options["device_id"] = _device_id(device)
        if provider == "TensorrtExecutionProvider":
            options.update(trt_fp16_enable=bool(fp16), trt_engine_cache_enable=True,
                           trt_engine_cache_path=str(Path(cache_dir) if cache_dir else path.parent / "trt_cache"))
        chain = [(provider, options)] + ([] if provider == "CPUExecutionProvider" else ["CPUExecutionProvider"])
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=chain)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises several types; all mean "skip"
            reasons.append(f"{provider}: {str(err).strip().splitlines()[0][:300]}")
            continue
        used = session.get_providers()[0]
        if used != provider:
            reasons.append(f"{provider}: could not be initialised (libraries or device missing), "
                           f"session fell back to {used}")
            continue
        return session, provider, reasons
    raise InputError(f"no onnxruntime provider could open {path.name}: " + "; ".join(reasons))

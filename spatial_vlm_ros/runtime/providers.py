"""onnxruntime execution providers: TensorRT (engine cache, fp16) -> CUDA -> CPU, and why each was skipped.

Shared by every ONNX part: the VLM engines and the learned perception parts (detector, SAM 2, depth).

:func:`provider_plan` is the decision alone (which providers to try, with which options, and which are left
out because this onnxruntime build lacks them); :func:`open_session` tries the plan in order and keeps the
reason each provider failed (session creation raised, or the session silently fell back to another
provider). Every reason is logged as a warning, so a run on the CPU says why it is not on the GPU.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError

log = logging.getLogger(__name__)

TENSORRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
PROVIDER_PRIORITY = (TENSORRT, CUDA, CPU)
GPU_PROVIDERS = frozenset({TENSORRT, CUDA})


@dataclass(frozen=True)
class ProviderPlan:
    """Providers to try in order, ``(name, provider options)``, and ``skipped``: "Name: reason" lines."""

    candidates: tuple[tuple[str, dict], ...]
    skipped: tuple[str, ...] = field(default=())


def device_id(device: str) -> int:
    """GPU index of a device string: "cuda" -> 0, "cuda:1" -> 1."""
    try:
        return int(device.split(":", 1)[1]) if ":" in device else 0
    except ValueError:
        raise InputError(f"bad device {device!r}; use cpu, cuda or cuda:N") from None


def provider_options(provider: str, device: str, fp16: bool, cache_dir: str | Path) -> dict:
    """Options of one provider: the GPU index; for TensorRT also the engine cache and fp16 engines."""
    if provider not in GPU_PROVIDERS:
        return {}
    options: dict = {"device_id": device_id(device)}
    if provider == TENSORRT:
        options.update(trt_fp16_enable=bool(fp16), trt_engine_cache_enable=True,
                       trt_engine_cache_path=str(cache_dir))
    return options


def provider_plan(device: str, cache_dir: str | Path, fp16: bool = True,
                  available: Iterable[str] | None = None, order: Sequence[str] | None = None) -> ProviderPlan:
    """Which providers to try for ``device`` ("cpu": the CPU only; "cuda", "cuda:N", "auto": the whole
    priority list) given the ``available`` ones (default: ``ort.get_available_providers()``).

    ``order`` overrides the priority list (e.g. the provider another graph of the same model ended on).
    ``cache_dir``: TensorRT engine cache; ``fp16``: TensorRT builds fp16 engines.
    """
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    available = set(available)
    if order is None:
        order = (CPU,) if device == "cpu" else PROVIDER_PRIORITY
    candidates, skipped = [], []
    for provider in order:
        if provider in available:
            candidates.append((provider, provider_options(provider, device, fp16, cache_dir)))
        else:
            skipped.append(f"{provider}: not in this onnxruntime build")
    return ProviderPlan(tuple(candidates), tuple(skipped))


def open_session(path: str | Path, device: str = "cpu", fp16: bool = True, order: Sequence[str] | None = None,
                 threads: int = 0, cache_dir: str | Path | None = None, available: Iterable[str] | None = None):
    """Open the ONNX graph ``path`` on the first provider of :func:`provider_plan` that works.

    ``threads``: CPU intra-op threads (0 = onnxruntime's default); ``cache_dir`` defaults to
    ``<graph dir>/trt_cache``. Returns ``(session, provider, reasons)``, ``reasons`` listing why each earlier
    provider was skipped (each also logged). Raises InputError when none works.
    """
    import onnxruntime as ort

    path = Path(path)
    plan = provider_plan(device, cache_dir or path.parent / "trt_cache", fp16, available, order)
    reasons = list(plan.skipped)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3        # our own log says why a provider was skipped
    opts.intra_op_num_threads = int(threads)
    for provider, options in plan.candidates:
        chain = [(provider, options)] + ([] if provider == CPU else [CPU])
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=chain)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises several types; all mean "skip"
            reasons.append(f"{provider}: session creation failed: {str(err).strip().splitlines()[0][:300]}")
            continue
        used = session.get_providers()[0]
        if used == provider:
            for reason in reasons:
                log.warning("onnxruntime provider skipped for %s: %s", path.name, reason)
            return session, provider, reasons
        reasons.append(f"{provider}: could not be initialised (libraries or device missing), "
                       f"session fell back to {used}")
    raise InputError(f"no onnxruntime provider could open {path.name}: " + "; ".join(reasons))

"""One-core timing set-up shared by the per-frame benchmarks. Import it FIRST, before numpy or OpenCV:
importing it makes BLAS/OpenMP single-threaded (their thread pools start with numpy);
``pin_to_one_core`` then pins the process and makes OpenCV single-threaded."""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"


def pin_to_one_core(cpu: int | None = None, last: bool = False) -> str:
    """Pin this process to ``cpu`` (default: the first allowed core, or the last with ``last``); returns
    a line saying where it runs."""
    import cv2
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        allowed = os.sched_getaffinity(0)
        cpu = (max(allowed) if last else min(allowed)) if cpu is None else cpu
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"

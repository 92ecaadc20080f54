"""spatial_vlm_ros: metric spatial understanding for ROS 2 robots.

The ``core`` subpackage is ROS-free (numpy/scipy/opencv only); ``ros`` holds the thin node layer.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: the per-frame pipeline (decode, detect, gravity, lift, memory), imported lazily
_EXPORTS = {"FramePipeline": "pipeline", "PipelineConfig": "pipeline", "FrameResult": "pipeline"}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value

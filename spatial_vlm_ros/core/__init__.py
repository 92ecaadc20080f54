"""ROS-free core: camera geometry, depth, lifting, gravity, scene memory, relations, quantities, questions.

Frames used throughout (all lengths in metres):
- camera optical frame: x right, y down, z forward (REP 103 ``*_optical_frame``);
- gravity frame: z up (against gravity), x = camera x projected on the horizontal plane (right),
  y = z cross x (forward, horizontal), origin at the camera center.

Public API (imported lazily, so ``import spatial_vlm_ros.core.camera`` stays light)::

    from spatial_vlm_ros.core import CameraModel, SceneMemory, SpatialQueries

The per-frame pipeline that composes the core with the detectors is one layer up:
``from spatial_vlm_ros import FramePipeline, PipelineConfig``.
"""
from __future__ import annotations

from importlib import import_module

#: public name -> the core module that defines it
_EXPORTS = {
    "CameraModel": "camera", "DepthNoiseModel": "noise", "LiftingError": "uncertainty",
    "Frame": "frame", "Segmentation": "frame", "Detection2D": "frame",
    "GravityFrame": "gravity_frame", "GravityEstimator": "gravity", "GravityParams": "gravity",
    "LiftingParams": "lifting", "lift_instances": "lifting",
    "SceneMemory": "memory", "MemoryParams": "memory", "Observation": "observation", "TrackedObject": "observation",
    "Scene": "scene",
    "SpatialQueries": "spatial_queries", "RelationAnswer": "spatial_queries", "MeasureAnswer": "spatial_queries",
    "AskAnswer": "spatial_queries",
    "RELATIONS": "relations", "RelationParams": "relations", "evaluate_relation": "relations",
    "canonical_relation": "relations",
    "QUANTITIES": "quantities", "measure": "quantities", "canonical_quantity": "quantities",
    "parse_question": "questions", "Query": "questions",
    "SpatialError": "errors", "InputError": "errors", "QueryError": "errors",
}
_RENAMED = {"evaluate_relation": "evaluate", "parse_question": "parse"}   # exported under a clearer name

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

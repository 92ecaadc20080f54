"""How one evaluation runs (``EvaluationConfig``), what it can evaluate, and the default parameter files.

The evaluation itself is ``runner``; see its module docstring for the flow and ``docs/evaluation.md``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PARAMS = REPO_ROOT / "config" / "perception.yaml"
DEFAULT_VLM_PARAMS = REPO_ROOT / "config" / "vlm.yaml"

#: who answers the evaluation's questions (see ``runner``'s module docstring)
EVALUATED_ENGINES = ("geometry", "vlm")

#: detectors the evaluation can run the node with
EVALUATED_DETECTORS = ("external", "boxes", "tabletop")

#: detectors whose node labels are the ground-truth labels (masks or boxes written from the ground truth)
GT_LABELLED = ("external", "boxes")


@dataclass
class EvaluationConfig:
    """How to run one evaluation. Times in seconds."""

    detector: str = "external"                 # external | boxes | tabletop
    params_file: str | None = None             # node parameter YAML; default config/perception.yaml
    rate: float = 1.0                          # replay speed factor within a frame set
    node: str = "subprocess"                   # subprocess | inprocess
    namespace: str = ""
    parameter_overrides: dict = field(default_factory=dict)   # extra node parameters, e.g. compensate_motion
    settle_timeout_s: float = 15.0             # wait for the node to publish a frame set's last frame
    startup_timeout_s: float = 60.0
    service_timeout_s: float = 10.0
    relations: set[str] | None = None          # subset of relations to ask (None = all in the ground truth)
    quantities: set[str] | None = None
    annotate: int = 4                          # annotated frames in the report
    progress: bool = True
    log_path: str | None = None                # node subprocess output (default: <out_dir>/node_<detector>.log)
    engine: str = "geometry"                   # geometry | vlm (see runner's module docstring)
    vlm_model: str = ""                        # engine vlm: the vlm_node's model (HF id or directory)
    vlm_parameters: dict = field(default_factory=dict)   # further vlm_node parameters, e.g. backend, device
    vlm_timeout_s: float = 120.0               # engine vlm: longest wait for one answer (the first one
                                               # includes loading the model)
    scene_queries: bool = True                 # engine geometry: also ask ~/find and ~/check_placement
                                               # (``scene_query_truth``)


def check_config(cfg: EvaluationConfig) -> None:
    """InputError for a detector or engine the evaluation cannot run, or engine ``vlm`` without a model."""
    if cfg.detector not in EVALUATED_DETECTORS:
        raise InputError(f"unknown detector '{cfg.detector}' ({', '.join(EVALUATED_DETECTORS)})")
    if cfg.engine not in EVALUATED_ENGINES:
        raise InputError(f"unknown engine '{cfg.engine}' ({', '.join(EVALUATED_ENGINES)})")
    if cfg.engine == "vlm" and not cfg.vlm_model:
        raise InputError("engine 'vlm' needs a model for the VLM node (--vlm-model HF_ID_OR_DIR)")


def params_path(params_file) -> Path:
    """The node's parameter file: ``params_file`` or ``DEFAULT_PARAMS``; InputError when it does not exist."""
    p = Path(params_file) if params_file else DEFAULT_PARAMS
    if not p.is_file():
        raise InputError(f"parameter file {p} does not exist")
    return p

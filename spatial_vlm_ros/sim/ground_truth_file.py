"""The ground-truth JSON file: one entry per frame, keyed by the frame's header stamp in nanoseconds.

Written next to generated datasets and inside generated bags (``<bag>/ground_truth.json``); users may write
one for a bag recorded elsewhere. The format is specified in ``docs/ground_truth_format.md``.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError

FORMAT_NAME = "spatial_vlm_ros/ground_truth"
FORMAT_VERSION = 1
_OBJECT_KEYS = ("id", "label", "box_min", "box_max")


def ground_truth_document(frames: Iterable[dict], source: str = "simulator") -> dict:
    """The file's content for these per-frame entries (each holding ``stamp_ns``)."""
    return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "source": source,
            "frames": {str(int(f["stamp_ns"])): f for f in frames}}


def save_ground_truth(path: str | Path, frames: Iterable[dict], source: str = "simulator") -> Path:
    path = Path(path)
    path.write_text(json.dumps(ground_truth_document(frames, source)))
    return path


def load_ground_truth(path: str | Path, complete: bool = True) -> dict[int, dict]:
    """Frames of a ground-truth file as ``{stamp_ns: frame}`` in stamp order.

    Checks the format and each frame's required fields (InputError naming the problem). With ``complete``,
    frames that only list object boxes get their ``relations`` and ``quantities`` computed with the
    package's definitions (``sim.ground_truth.complete_frame``)."""
    path = Path(path)
    frames = _frames_of(path, _read_document(path))
    out: dict[int, dict] = {}
    for key, frame in frames.items():
        stamp = _frame_stamp(path, key)
        _check_frame(path, key, frame)
        frame = dict(frame, stamp_ns=stamp)
        if complete and ("relations" not in frame or "quantities" not in frame):
            from spatial_vlm_ros.sim.ground_truth import complete_frame
            frame = complete_frame(frame)
        out[stamp] = frame
    return dict(sorted(out.items()))


def _read_document(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read ground truth {path}: {err}") from None


def _frames_of(path: Path, doc) -> dict:
    """The document's ``frames`` after checking its format name and version."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise InputError(f"{path}: not a ground-truth file (expected \"format\": \"{FORMAT_NAME}\")")
    if int(doc.get("version", 0)) > FORMAT_VERSION:
        raise InputError(f"{path}: format version {doc.get('version')} is newer than supported ({FORMAT_VERSION})")
    frames = doc.get("frames")
    if not isinstance(frames, dict):
        raise InputError(f"{path}: \"frames\" must be an object keyed by stamp in nanoseconds")
    return frames


def _frame_stamp(path: Path, key: str) -> int:
    try:
        return int(key)
    except ValueError:
        raise InputError(f"{path}: frame key {key!r} is not a stamp in integer nanoseconds") from None


def _check_frame(path: Path, key: str, frame: dict) -> None:
    """InputError when the frame lacks ``gravity.rotation`` or an object lacks a required key."""
    if "gravity" not in frame or "rotation" not in frame.get("gravity", {}):
        raise InputError(f"{path}: frame {key} has no gravity.rotation")
    for i, obj in enumerate(frame.get("objects", [])):
        missing = [k for k in _OBJECT_KEYS if k not in obj]
        if missing:
            raise InputError(f"{path}: frame {key} object {i} lacks {', '.join(missing)}")

"""Detector ``boxes``: any 2D detector's boxes (yolo_ros, Isaac ROS RT-DETR / Grounding DINO, ...) turned
into object instances by segmenting each box from depth (``perception.box_segmenter``).

The frame's ``Detection2D`` list is checked first: boxes with a non-finite or negative score, a zero,
negative or non-finite size, or no pixel inside the image are skipped; boxes reaching past the image border
are clipped (the segmenter works on the pixels inside); each is noted in ``warnings``. Boxes under
``min_score`` are dropped silently (the detector's own threshold). Zero detections give no instances (not an
error). Labels are kept as given: an unknown label is just a name. Pixels: u right, v down.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.frame import Detection2D
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.perception.base import Detector, Instance
from spatial_vlm_ros.perception.box_segmenter import DepthBoxParams, DepthBoxSegmenter

_SEG = DepthBoxParams()


@dataclass(frozen=True)
class BoxesParams:
    """Settings of ``BoxesDetector`` (the ``boxes.*`` node parameters): the score threshold and the main
    settings of the depth box segmenter (``DepthBoxParams``, same names and defaults). Metres, pixels."""

    min_score: float = 0.0                               # boxes scoring below this are dropped
    min_height_m: float = _SEG.min_height_m              # object pixels are this high above the support
    containment: float = _SEG.containment                # segment fraction inside a box for it to claim it
    box_margin_px: int = _SEG.box_margin_px              # boxes grown by this for that test
    depth_tolerance_m: float = _SEG.depth_tolerance_m    # slack of a box's per-row depth interval
    color_edges: bool = _SEG.color_edges                 # cut segments at color edges too
    fill_holes: bool = _SEG.fill_holes                   # pixels without depth inside the silhouette count

    def segmenter_params(self, noise: DepthNoiseModel | None = None) -> DepthBoxParams:
        """The segmenter's parameters, with the pipeline's depth-noise model."""
        kw = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "min_score"}
        return replace(DepthBoxParams(), noise=noise or DepthBoxParams().noise, **kw)


def check_detections(boxes: list[Detection2D] | None, width: int, height: int
                     ) -> tuple[list[tuple[int, Detection2D]], list[str]]:
    """The usable boxes of a frame as ``(index in boxes, box)`` and one warning per box skipped or clipped
    (see module doc); boxes come back clipped to the ``width`` x ``height`` image (pixel centers at
    integers, so the image spans -0.5 .. ``width - 0.5``)."""
    kept, warnings = [], []
    for k, b in enumerate(boxes or []):
        name = f"detection {k} '{b.label}'"
        score = float(b.score)
        if not math.isfinite(score) or score < 0.0:
            warnings.append(f"{name}: invalid score {b.score}; skipped")
            continue
        geom = (b.center_x, b.center_y, b.size_x, b.size_y)
        if not all(math.isfinite(float(v)) for v in geom):
            warnings.append(f"{name}: non-finite box {geom}; skipped")
            continue
        if b.size_x <= 0.0 or b.size_y <= 0.0:
            warnings.append(f"{name}: box size {b.size_x} x {b.size_y} px is not positive; skipped")
            continue
        u0, v0, u1, v1 = b.corners()
        cu0, cv0 = max(u0, -0.5), max(v0, -0.5)
        cu1, cv1 = min(u1, width - 0.5), min(v1, height - 0.5)
        if cu1 - cu0 < 0.5 or cv1 - cv0 < 0.5:          # not even half a pixel inside the image
            warnings.append(f"{name}: box lies outside the {width}x{height} image; skipped")
            continue
        if (cu0, cv0, cu1, cv1) != (u0, v0, u1, v1):
            warnings.append(f"{name}: box reaches past the image border; clipped")
            b = Detection2D.from_corners(b.label, score, cu0, cv0, cu1, cv1, b.id)
        kept.append((k, b))
    return kept, warnings


class BoxesDetector(Detector):
    """Instances from the frame's external 2D boxes, segmented from depth (module doc). ``warnings`` holds
    the last frame's skipped or clipped boxes."""

    name = "boxes"
    needs_boxes = True

    def __init__(self, params: BoxesParams | None = None, noise: DepthNoiseModel | None = None):
        self.params = params or BoxesParams()
        self.segmenter = DepthBoxSegmenter(self.params.segmenter_params(noise))
        self.warnings: list[str] = []

    def detect(self, rgb: np.ndarray | None, depth_m: np.ndarray, camera: CameraModel,
               gravity: GravityFrame, boxes: list[Detection2D] | None = None) -> list[Instance]:
        """One instance per usable box that could be segmented (``instance_id`` = its index in ``boxes``
        + 1). ``boxes`` None or empty: no instances."""
        h, w = depth_m.shape[:2]
        kept, self.warnings = check_detections(boxes, w, h)
        pairs = [(i, b) for i, b in kept if b.score >= self.params.min_score]
        if not pairs:
            return []
        found = self.segmenter.segment(rgb, depth_m, camera, gravity, [b for _, b in pairs])
        self.warnings.extend(self.segmenter.warnings)
        return [Instance(inst.mask, inst.label, inst.score, pairs[inst.instance_id - 1][0] + 1) for inst in found]

"""Lifting: instance masks + metric depth -> 3D objects (``Observation``) with gravity-aligned boxes.

Per instance, working inside the bounding rectangle of its mask (one cv2.boundingRect, or the crop itself):
1. mask-edge bleeding: erode the mask by ``erosion_px`` but keep rim pixels whose depth agrees with the
   interior next to them (segmentation masks and aligned depth disagree at object edges; a blind erosion
   would also shrink every box by a pixel on each side); at an occlusion boundary, pixels within
   ``occluded_band_px`` of a nearer instance whose depth is mixed with that instance's (flying pixels) are
   dropped and the band's pixels without depth are not filled (``pixels._occluded_band``);
2. keep valid depth in ``[min_range_m, max_range_m]``; reject outliers along the optical axis with a
   median/MAD band, then keep the largest depth cluster (consecutive sorted depths closer than a gap that
   grows with the sensor noise), which drops background seen through or beside the mask;
3. back-project with the camera's cached per-pixel rays (distortion honoured), rotate into the gravity
   frame, drop points lying on the support plane (table seen beside the object through a spilled mask);
   mask pixels left without depth (sensor holes at edges, stereo shadows beside nearer objects) are
   back-projected at the depth of their nearest accepted neighbour in the same row (``fill_silhouette``),
   so the box spans the whole silhouette;
4. amodal completion of the unseen back (``amodal``), then a noise-aware box in the gravity frame: per axis
   the extreme coordinates after moving every point inwards by a few sigmas of its own depth noise
   (``noise_trim_sigmas``; on the vertical axis as many as the extreme of that many points needs), grown
   by half a pixel per side (pixel centers lie inside the silhouette);
5. after all instances: box bottoms hidden or curving away under the silhouette are put on the surface
   beneath them (support plane or another object's top, up to ``rest_snap_m`` above it, or up to
   ``rest_snap_rounded_fraction`` of the visible height for a bottom curving away); a bottom seen with a gap under it
   (an object held above the table: ``_bottom_seen``) stays where it is; the center is the box center,
   mapped back to the camera optical frame.

Cost: step 1 runs per instance on its rectangle; steps 2-5 run once for the whole frame on the concatenated
pixels of all instances (instance ``g`` of each, segment offsets ``off``; segment reductions such as
``np.maximum.reduceat``, one ``np.bincount`` histogram for all instances, short per-instance loops only for
order statistics), with the same results as lifting each instance alone (``test/core/test_lifting_batch.py``)
except where instances meet: the occlusion band (step 1) and resting on another object (step 5).

Frames: camera optical (x right, y down, z forward) and gravity (z up, y forward horizontal), metres.
Accuracy: ``test/core/test_lifting.py`` (analytic scenes) and ``benchmarks/accuracy_offline.py`` (rendered
scenes with stereo-like noise through the whole pipeline); speed: ``benchmarks/bench_lifting.py`` and
``benchmarks/bench_pipeline.py`` (figures in ``docs/per_frame_cost.md``).

Modules, by stage: ``params`` (``LiftingParams``), ``pixels`` (step 1: pixel selection, mask cleaning),
``depth_band`` (step 2: depth band and clusters), ``points`` (step 3: support-plane rejection, silhouette
fill, measured noise), ``box`` (step 4: robust box: detached strays, k-th extremes, vertical trim),
``amodal`` (step 4: amodal completion), ``support`` (step 5: support snapping, rest on supports),
``segments`` (segment-array helpers) and ``batch`` (the driver ``lift_instances``).
"""
from __future__ import annotations

from spatial_vlm_ros.core.lifting.batch import lift_instances
from spatial_vlm_ros.core.lifting.params import AMODAL_MODES, LiftingParams

__all__ = ["AMODAL_MODES", "LiftingParams", "lift_instances"]

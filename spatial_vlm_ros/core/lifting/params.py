"""Settings of the lifting (``LiftingParams``) and the amodal completion modes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.noise import DepthNoiseModel

AMODAL_MODES = ("none", "symmetric", "auto")


@dataclass(frozen=True)
class LiftingParams:
    """Settings of ``lift_instances``. Lengths in metres, angles in degrees.

    Amodal correction (``amodal``): one view sees only the surfaces facing the camera, so the visible box is
    too shallow (gravity y, away from the camera) and its center too near: a sphere seen from 35 deg above
    shows ~80 % of its depth, a bottle's body or a cylinder seen from the side about half.
    - ``"none"``: the box of the visible surface;
    - ``"symmetric"``: assume the footprint is at least as deep as wide: extend the box backwards (+y) to
      ``max(visible depth, width)``; exact for upright cylinders and square boxes, too deep for objects
      wider than deep;
    - ``"auto"`` (default): complete the hidden back by symmetry (``_completion``): boxes at any yaw,
      cylinders and spheres map onto themselves under a half turn about the vertical axis through their
      center, which lies midway between the object's left and right extremes (its widest section across the
      line of sight), so the visible front, turned, is the back. Points behind that center are kept as they
      are (a top seen from above already shows the back). A silhouette side that is an occlusion boundary
      (a nearer object or the image border next to it) does not locate the center: with one such side the
      front is mirrored about the plane across the line of sight through the other side's extreme, with two
      nothing is completed. When the object's top is seen at less than ``amodal_min_elevation_deg`` (only
      the front faces are visible) the ``"symmetric"`` rule is applied on top.
    Spheres stay too shallow: the depth next to a silhouette lies on the surface in front of the limb, so
    their widest section is located too near. No completion recovers parts hidden by other objects. Figures
    (``benchmarks/accuracy_offline.py``): ``docs/measured_defaults.md``; the analytic-scene checks are in
    ``test/core/test_lifting.py``.
    """

    min_pixels: int = 30               # valid depth pixels (after all rejection) needed to lift an instance
    erosion_px: int = 1                # mask erosion against edge bleeding (skipped if it leaves too few)
    edge_tolerance_m: float = 0.02     # eroded rim pixels within this depth of the interior are kept
    occluded_band_px: int = 2          # pixels this close to a nearer instance's pixels are dropped (mixed
                                       # depth at an occlusion boundary, ``pixels._occluded_band``); 0 = off
    mad_k: float = 4.0                 # outlier band: |z - median| <= mad_k * 1.4826 * MAD, but never
    min_depth_band_m: float = 0.05     # narrower than this nor than the object's width
    cluster_gap_m: float = 0.03        # depth gap that splits clusters (at least 6 sigma(z) of ``noise``)
    noise: DepthNoiseModel = field(default_factory=DepthNoiseModel)
    interior_stride: int = 3           # pixels more than 2 px inside the mask: one in stride^2 is lifted
    # box extents (``_robust_box``)
    box_percentiles: tuple[float, float] = (0.02, 99.98)  # tails (percent of the points) ignored per axis;
                                       # a fixed 0.5 % cut ~5 % off the width of round objects
    noise_trim_sigmas: float = 2.0     # points move this many sigmas of their depth noise inwards (at least)
    detached_gap_m: float = 0.015      # extreme points cut off from the rest by an empty stretch this wide
    detached_gap_px: float = 8.0       # (or this many pixel footprints) are strays and ignored, if they are
    detached_fraction: float = 0.02    # at most this fraction of the points
    fill_silhouette: bool = True       # silhouette pixels without depth extend the box (see step 3)
    fill_min_row: int = 3              # ... taking depth from rows with at least this many accepted pixels
    mask_spill_px: int = 0             # the silhouette is the mask shrunk by this (masks known to spill over)
    # amodal completion (see above)
    amodal: str = "auto"               # "none" | "symmetric" | "auto"
    amodal_min_elevation_deg: float = 15.0
    amodal_band: float = 0.01          # fraction of the points taken as each left/right extreme
    amodal_max_points: int = 600       # visible points (evenly subsampled) turned to make the hidden back
    occlusion_fraction: float = 0.2    # share of a silhouette side's rows next to a nearer surface that makes
                                       # it an occlusion boundary
    amodal_points: bool = True         # the observation's points include the filled and completed ones (so
                                       # gaps to other objects see the hidden back)
    # support
    support_margin_m: float = 0.005    # points less than this (or 2.5 sigma) above the support are dropped
    snap_to_support_m: float = 0.015   # a box bottom this close above the support plane is put on it; also
                                       # the contact tolerance of one object resting on another
    rest_snap_m: float = 0.06          # a hidden box bottom up to this far above the surface beneath it
                                       # (support plane or another object's top) is put on it; 0 = off
    rest_snap_rounded_fraction: float = 0.6  # ... or up to this fraction of its visible height when its
                                       # lowest visible surface curves away under it (a ball): what is
                                       # hidden below grows with the object; 0 = rest_snap_m only
    seen_gap_m: float = 0.02           # a bottom is seen (not put down) when what lies just below the
                                       # mask's lower rim is this much (or the support margin + 4 sigma)
    seen_gap_fraction: float = 0.5     # lower than the box bottom on this fraction of the rim columns,
    seen_max_undercut: float = 0.2     # and its lowest visible surface is upright: horizontal range from the
                                       # camera changes less than this per metre down (``_undercut_slopes``)
    max_points: int = 2000             # points kept per observation (evenly subsampled)
    min_range_m: float = 0.1
    max_range_m: float = 10.0

    def __post_init__(self):
        if self.amodal not in AMODAL_MODES:
            raise InputError(f"lifting: unknown amodal mode '{self.amodal}' "
                             f"(expected one of {', '.join(AMODAL_MODES)})")
        lo, hi = self.box_percentiles
        if not 0.0 <= lo < hi <= 100.0:
            raise InputError(f"lifting: box_percentiles must satisfy 0 <= low < high <= 100, got {lo}, {hi}")
        if min(self.erosion_px, self.mask_spill_px, self.occluded_band_px) < 0 \
                or min(self.min_pixels, self.max_points, self.interior_stride, self.fill_min_row,
                       self.amodal_max_points) < 1:
            raise InputError("lifting: erosion_px, mask_spill_px and occluded_band_px must be >= 0; min_pixels, "
                             "max_points, interior_stride, fill_min_row and amodal_max_points >= 1")
        if min(self.noise_trim_sigmas, self.rest_snap_m, self.rest_snap_rounded_fraction, self.detached_fraction,
               self.seen_gap_m) < 0.0 \
                or not 0.0 < self.amodal_band < 0.5 or min(self.detached_gap_m, self.detached_gap_px) <= 0.0 \
                or not 0.0 < self.seen_gap_fraction <= 1.0:
            raise InputError("lifting: noise_trim_sigmas, rest_snap_m, rest_snap_rounded_fraction, seen_gap_m "
                             "and detached_fraction must "
                             "be >= 0, detached_gap_m and detached_gap_px > 0, amodal_band in (0, 0.5), "
                             "seen_gap_fraction in (0, 1]")

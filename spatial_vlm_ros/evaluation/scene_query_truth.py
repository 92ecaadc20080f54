"""Scene-level queries (``~/find``, ``~/check_placement``) asked per frame set and scored against the ground truth.

Truth comes from the frame's ground-truth boxes (whole objects, gravity frame; docs/ground_truth_format.md):

- find, "which objects are on the table" (``on_top_of`` ``table``): the objects whose ``supported_by`` is
  ``table``; "what is on X" for every visible X that something visible rests on; "the object closest to the
  camera" (``distance_to_camera``, limit 1) and "the tallest object" (``height``, limit 1), ambiguous when
  the runner-up is within ``ORDER_MARGIN_M``. The candidates are the visible objects plus any object the
  node returned that matches a ground-truth object (the memory keeps objects seen earlier in the scene). A
  find answer is right when the objects it returns, mapped to ground-truth ids by a one-to-one center
  matching, are exactly the true ones among the candidates; a returned object that matches none is wrong.
- placement, "is there space for a box between A and B": for pairs of visible named objects standing on the
  table, square boxes of side ``SIZE_FACTORS`` x the true free width between them (5 cm tall). The truth is
  ``core.placement.check_placement`` run on a scene built from the ground-truth boxes (the way the relations'
  truth uses the package's definitions on true boxes): fits or not, ambiguous within ``PLACEMENT_MARGIN_M``.
  An answer "fits" is right only when its suggested pose is truly free: the placed rectangle clear (by more
  than -``POSE_TOLERANCE_M``) of every object reaching into its height range, each object taken as its
  mesh's ``footprint`` (the convex hull seen from above) where the ground truth has one, else its box. The
  free width is scored within ±10 % of the true one.

Missed objects count: a query whose reference the node did not find fails (``missed``), and a true member the
node did not return makes the answer wrong. Lengths in metres, stamps in seconds.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np

from spatial_vlm_ros.core.errors import SpatialError
from spatial_vlm_ros.core.placement import check_placement
from spatial_vlm_ros.sim.ground_truth import objects_from_entries

from .matching import match_objects

ORDER_MARGIN_M = 0.02         # closest / tallest: a runner-up this close makes the query ambiguous
PLACEMENT_MARGIN_M = 0.01     # |true margin| below this: the placement is too close to call
POSE_TOLERANCE_M = 0.01       # a "fits" pose may touch a true box by this much
SIZE_FACTORS = (0.6, 1.4)     # placement box sides, as fractions of the true free width
BOX_HEIGHT_M = 0.05
MIN_SIDE_M = 0.02
MAX_PAIRS = 2                 # placement pairs per frame set
FREE_WIDTH_TOLERANCE = 0.10   # relative
HEIGHT_TOLERANCE_M = 0.02     # an object whose top is this little above the box's bottom does not collide


@dataclass
class SceneQueryRecord:
    """One scene-level query of a frame and the node's answer. ``truth``/``predicted``: for ``find`` the
    ground-truth ids (sorted, comma-joined; ``?node_id`` for an object that matches none), for ``placement``
    whether the box fits."""

    frame_stamp: float
    kind: str                                   # "find" | "placement"
    query: str                                  # what was asked, in words
    request: dict                               # the service request's fields
    truth: str | bool
    ambiguous: bool = False
    predicted: str | bool | None = None
    success: bool = False
    message: str = ""
    answer: str = ""
    confidence: float | None = None
    truth_free_width_m: float | None = None     # placement
    free_width_m: float | None = None           # placement: the node's
    pose_margin_m: float | None = None          # placement answered "fits": the true margin at its pose
    latency_ms: float = float("nan")
    scene: str = ""
    missed: str = ""                            # GT ids the request names that the node did not find
    reference_id: str = ""                      # find "what is on X": X's GT id

    @property
    def answered(self) -> bool:
        return self.success and self.predicted is not None

    @property
    def correct(self) -> bool:
        if not self.answered or self.predicted != self.truth:
            return False
        return not (self.kind == "placement" and self.predicted and
                    (self.pose_margin_m is None or self.pose_margin_m <= -POSE_TOLERANCE_M))

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ queries
def scene_queries(frame: dict, visible: dict[str, dict], names: dict[str, str]) -> list[SceneQueryRecord]:
    """Unanswered records of the frame's scene queries (see the module docstring). ``names``: GT id -> the
    name sent to the node (a missing name = the node did not find that object)."""
    stamp, scene = int(frame["stamp_ns"]) * 1e-9, str(frame.get("scene_id", ""))
    records = [SceneQueryRecord(stamp, "find", "which objects are on the table",
                                dict(relation="on_top_of", reference="table", limit=100), "", scene=scene)]
    for sid in sorted({e.get("supported_by") for e in visible.values()} - {"table", None}):
        if sid in visible:
            records.append(_named(SceneQueryRecord(stamp, "find", f"what is on {sid}", dict(
                relation="on_top_of", reference=names.get(sid, ""), limit=100), "", scene=scene,
                reference_id=sid), names, sid))
    records += [SceneQueryRecord(stamp, "find", "the object closest to the camera",
                                 dict(order_by="distance_to_camera", limit=1), "", scene=scene),
                SceneQueryRecord(stamp, "find", "the tallest object", dict(order_by="height", limit=1), "",
                                 scene=scene)]
    return records + _placement_queries(frame, visible, names, stamp, scene)


def _named(record: SceneQueryRecord, names: dict[str, str], *gt_ids: str) -> SceneQueryRecord:
    gone = [g for g in gt_ids if g not in names]
    if gone:
        record.missed, record.success = ",".join(gone), False
        record.message = f"object not found by the detector: {', '.join(gone)}"
    return record


def _placement_queries(frame, visible, names, stamp, scene) -> list[SceneQueryRecord]:
    _, gt_scene = objects_from_entries(frame)
    on_table = sorted(oid for oid, e in visible.items() if e.get("supported_by", "table") == "table")
    out = []
    for a, b in itertools.islice(itertools.combinations(on_table, 2), MAX_PAIRS):
        try:
            free = check_placement(gt_scene, (MIN_SIDE_M, MIN_SIDE_M, BOX_HEIGHT_M), "between", [a, b]).free_width_m
        except SpatialError:
            continue
        if not math.isfinite(free) or free < 2 * MIN_SIDE_M:
            continue
        for factor in SIZE_FACTORS:
            side = round(max(factor * free, MIN_SIDE_M), 3)
            size = (side, side, BOX_HEIGHT_M)
            truth = check_placement(gt_scene, size, "between", [a, b])
            record = SceneQueryRecord(
                stamp, "placement", f"space for a {100 * side:.1f} cm box between {a} and {b}",
                dict(size=size, location="between", references=[names.get(a, ""), names.get(b, "")]),
                bool(truth.fits), ambiguous=abs(truth.margin_m) < PLACEMENT_MARGIN_M,
                truth_free_width_m=float(truth.free_width_m), scene=scene)
            out.append(_named(record, names, a, b))
    return out


# ------------------------------------------------------------------------------------------------ answers
def _answered(record: SceneQueryRecord, response, latency_ms: float) -> bool:
    """Copy the response's common fields; False when the call timed out (None) or failed."""
    record.latency_ms = latency_ms
    if response is None or not response.success:
        record.success = False
        record.message = "service call timed out" if response is None else str(response.message)
        return False
    record.success, record.message, record.answer = True, str(response.message), str(response.answer)
    return True


def fill_find(record: SceneQueryRecord, response, latency_ms: float, frame: dict, visible: dict[str, dict]) -> None:
    """Score a ``FindObjects`` response (None: timed out): map its objects to GT ids, set truth and predicted."""
    if not _answered(record, response, latency_ms):
        return
    record.confidence = float(min(response.confidences, default=1.0))
    gt_objects, _ = objects_from_entries(frame)
    entries = {e["id"]: e for e in frame.get("objects", [])}
    objects = {o.id: dict(entries[o.id], center=o.center, size=o.size) for o in gt_objects}
    returned = {o.id: np.array([o.center.x, o.center.y, o.center.z]) for o in response.objects}
    to_gt = {m.node_id: m.gt_id for m in match_objects(objects, returned)}
    mapped = [to_gt.get(o.id, f"?{o.id}") for o in response.objects]
    candidates = set(visible) | {g for g in mapped if g in objects}
    truth, ambiguous = _find_truth(record, objects, candidates)
    if record.request.get("limit") == 1:
        mapped = mapped[:1]
    record.truth, record.ambiguous = ",".join(sorted(truth)), ambiguous
    record.predicted = ",".join(sorted(mapped))


def _find_truth(record: SceneQueryRecord, objects: dict[str, dict], candidates: set[str]) -> tuple[list[str], bool]:
    req = record.request
    if req.get("relation") == "on_top_of":
        support = record.reference_id or "table"
        return [g for g in candidates if objects[g].get("supported_by", "table") == support], False
    key = {"distance_to_camera": lambda e: -float(np.linalg.norm(e["center"])),
           "height": lambda e: float(e["size"][2])}[req["order_by"]]
    ranked = sorted(candidates, key=lambda g: key(objects[g]), reverse=True)
    if not ranked:
        return [], False
    ambiguous = len(ranked) > 1 and abs(key(objects[ranked[0]]) - key(objects[ranked[1]])) < ORDER_MARGIN_M
    return ranked[:1], ambiguous


def fill_placement(record: SceneQueryRecord, response, latency_ms: float, frame: dict) -> None:
    """Score a ``CheckPlacement`` response (None: timed out); for "fits", the true margin at its pose."""
    if not _answered(record, response, latency_ms):
        return
    record.predicted, record.confidence = bool(response.fits), float(response.confidence)
    record.free_width_m = float(response.free_width)
    if response.fits:
        record.pose_margin_m = pose_margin(frame, record.request["size"], response.pose.position,
                                          float(response.yaw))


def pose_margin(frame: dict, size, position, yaw: float) -> float:
    """Signed clearance (metres; < 0 = overlap) between a box of ``size`` (w, d, h) at the camera-frame
    ``position`` turned by ``yaw`` (about up, from gravity x) and the frame's true objects that reach into its
    height range: separating-axis distance of the convex footprints (a lower bound of the gap, exact for
    overlaps and face-to-face gaps); +inf when nothing is in range."""
    _, gt_scene = objects_from_entries(frame)
    center = gt_scene.gravity.to_gravity(np.array([position.x, position.y, position.z], dtype=np.float64))
    w, d, h = (float(v) for v in size)
    bottom, top = center[2] - h / 2, center[2] + h / 2
    u, v = np.array([math.cos(yaw), math.sin(yaw)]), np.array([-math.sin(yaw), math.cos(yaw)])
    rect = np.array([center[:2] + sx * w / 2 * u + sy * d / 2 * v for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])
    margin = math.inf
    for e in frame.get("objects", []):
        lo, hi = np.asarray(e["box_min"], float), np.asarray(e["box_max"], float)
        if hi[2] <= bottom + HEIGHT_TOLERANCE_M or lo[2] >= top:
            continue
        poly = np.asarray(e["footprint"], float) if e.get("footprint") else np.array(
            [[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]])
        margin = min(margin, convex_separation(rect, poly))
    return margin


def convex_separation(p: np.ndarray, q: np.ndarray) -> float:
    """Largest gap (metres) along the edge normals of two convex polygons ((N, 2) and (M, 2) vertices in
    order): > 0 separated by at least that, < 0 overlapping by that along the best axis."""
    best = -math.inf
    for poly in (p, q):
        edges = np.roll(poly, -1, axis=0) - poly
        normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
        lengths = np.linalg.norm(normals, axis=1)
        normals = normals[lengths > 1e-12] / lengths[lengths > 1e-12, None]
        pp, qq = p @ normals.T, q @ normals.T
        gaps = np.maximum(qq.min(axis=0) - pp.max(axis=0), pp.min(axis=0) - qq.max(axis=0))
        best = max(best, float(gaps.max()))
    return best


# ------------------------------------------------------------------------------------------------ scoring
def summarize_scene_queries(records: list[SceneQueryRecord]) -> dict:
    """Per kind: queries, unambiguous, accuracy over the unambiguous ones (unanswered and missed count wrong),
    answered; placement also the share of "fits" poses that are truly free and of free widths within ±10 %."""
    out = {}
    for kind in ("find", "placement"):
        rec = [r for r in records if r.kind == kind]
        scored = [r for r in rec if not r.ambiguous]
        entry = {"queries": len(rec), "unambiguous": len(scored), "answered": sum(r.answered for r in rec),
                 "missed": sum(bool(r.missed) for r in rec),
                 "accuracy": sum(r.correct for r in scored) / len(scored) if scored else float("nan")}
        if kind == "placement":
            fits = [r for r in rec if r.answered and r.predicted]
            widths = [r for r in rec if r.answered and r.truth_free_width_m]
            entry["fits_pose_free"] = (sum(r.pose_margin_m is not None and r.pose_margin_m > -POSE_TOLERANCE_M
                                           for r in fits) / len(fits)) if fits else float("nan")
            entry["free_width_within_10pct"] = (sum(
                abs(r.free_width_m - r.truth_free_width_m) <= FREE_WIDTH_TOLERANCE * r.truth_free_width_m
                for r in widths) / len(widths)) if widths else float("nan")
        out[kind] = entry
    return out

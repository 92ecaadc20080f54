"""Scene-level queries (``find_objects``): which objects satisfy a relation to a reference, ordered by a key.

"What is on the box?" = relation ``on_top_of``, reference ``box``; "Which objects are on the table?" = the
same with the support surface's object ``table`` (``core.support_surface``); "What is left of the bowl?" =
``left_of`` + ``bowl``; "the nearest object to the mug" = order ``distance_to_reference``, reference ``mug``,
limit 1; "the object closest to the camera" = order ``distance_to_camera``; "the tallest object" = order
``height`` (descending, its default).

Decisions: a candidate matches when ``relations.evaluate(relation, candidate, reference)`` holds (the one
place relations are decided; its confidence is the match's); without a relation every candidate (after
``label_filter``, ``naming.matches``) matches. Candidates are the scene's objects, never the reference and
never a support surface. Order keys (``ORDER_KEYS``) measure each match through ``core.quantities`` (or the
box for ``volume``, the surface for ``distance_to_edge``); ties keep the scene's order. ``order_confidence``
is the probability that the first match truly comes first: ``Phi(|v_2 - v_1| / sqrt(s_1^2 + s_2^2))`` against
the second (1 with fewer than two matches or no order key). Frames: camera optical (x right, y down, z
forward) and the scene's gravity frame (z up); metres.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import quantities as q
from .errors import QueryError
from .naming import matches, resolve
from .noise import DepthNoiseModel
from .observation import TrackedObject
from .relations import RelationParams, canonical_relation, confidence_from_margin, evaluate
from .scene import Scene
from .support_surface import default_surface, distance_to_edge, is_surface, with_surfaces


@dataclass(frozen=True)
class OrderKey:
    name: str
    needs_reference: bool
    descending: bool               # default direction: True = largest first
    unit: str                      # "m" or "m^3"
    definition: str


ORDER_KEYS: dict[str, OrderKey] = {k.name: k for k in (
    OrderKey("distance_to_camera", False, False, "m", "euclidean distance from the camera center to the box "
             "center (quantity distance_to_camera); nearest first"),
    OrderKey("distance_to_reference", True, False, "m", "euclidean distance between the box centers (quantity "
             "distance); nearest first"),
    OrderKey("gap_to_reference", True, False, "m", "closest distance between the surfaces (quantity gap); "
             "nearest first"),
    OrderKey("horizontal_distance_to_reference", True, False, "m", "center distance in the gravity x-y plane "
             "(quantity horizontal_distance); nearest first"),
    OrderKey("height", False, True, "m", "gravity z extent of the box; tallest first"),
    OrderKey("width", False, True, "m", "gravity x extent of the box; widest first"),
    OrderKey("depth", False, True, "m", "gravity y extent of the box; deepest first"),
    OrderKey("volume", False, True, "m^3", "w * d * h of the gravity box; biggest first"),
    OrderKey("elevation", False, True, "m", "gravity z of the box center; highest first"),
    OrderKey("camera_x", False, False, "m", "camera x of the box center; leftmost first"),
    OrderKey("distance_to_edge", False, False, "m", "footprint center to the support surface's outline "
             "(support_surface.distance_to_edge); nearest the edge first"),
)}

#: superlative word -> (order key, descending); "closest"/"nearest" order by the reference when one is given
SUPERLATIVES: dict[str, tuple[str, bool]] = {
    "tallest": ("height", True), "shortest": ("height", False), "biggest": ("volume", True),
    "largest": ("volume", True), "smallest": ("volume", False), "widest": ("width", True),
    "narrowest": ("width", False), "thinnest": ("width", False), "highest": ("elevation", True),
    "lowest": ("elevation", False), "leftmost": ("camera_x", False), "rightmost": ("camera_x", True),
    "closest": ("distance_to_camera", False), "nearest": ("distance_to_camera", False),
    "farthest": ("distance_to_camera", True), "furthest": ("distance_to_camera", True),
}
_TO_REFERENCE = {"distance_to_camera": "distance_to_reference"}


@dataclass(frozen=True)
class Match:
    """One found object: its relation confidence (1 without a relation), the order key's value and sigma
    (metres, m^3 for volume; 0 without an order key) and the relation's margin (metres; 0 without)."""

    object: TrackedObject
    confidence: float
    value: float
    sigma: float
    margin_m: float = 0.0


@dataclass(frozen=True)
class FindResult:
    matches: tuple[Match, ...]
    relation: str                   # canonical relation ("" = none)
    reference_id: str               # "" = none
    order_by: str                   # order key ("" = none)
    descending: bool
    order_confidence: float         # P(the first match truly comes first by the order key)
    considered: int                 # candidates evaluated (after the label filter)
    explanation: str


def parse_order(order_by: str, has_reference: bool = False) -> tuple[str, bool]:
    """``(key, descending)`` for ``order_by``: a key of ``ORDER_KEYS`` or a word of ``SUPERLATIVES``,
    optionally followed by ``asc``/``desc`` (or led by ``-`` for descending); ``("", False)`` for "". Raises
    ``QueryError`` naming the keys for anything else."""
    if not isinstance(order_by, str):
        raise QueryError(f"order_by must be a string, not {type(order_by).__name__}")
    words = order_by.strip().lower().replace("-", " - ").split()
    if not words:
        return "", False
    direction = None
    if words[0] == "-":
        direction, words = True, words[1:]
    if words and words[-1] in ("asc", "ascending", "desc", "descending"):
        direction, words = words[-1].startswith("desc"), words[:-1]
    key = "_".join(words)
    if key in SUPERLATIVES:
        key, default = SUPERLATIVES[key]
        key = _TO_REFERENCE.get(key, key) if has_reference else key
    elif key in ORDER_KEYS:
        default = ORDER_KEYS[key].descending
    else:
        raise QueryError(f"unknown order key '{order_by}'; known: {', '.join(ORDER_KEYS)} (optionally followed "
                         f"by 'asc' or 'desc'), or a superlative ({', '.join(SUPERLATIVES)})")
    return key, default if direction is None else direction


def _check_limit(limit) -> int:
    """``limit`` as an int, 0 for None (every match)."""
    if limit is None:
        return 0
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)):
        raise QueryError(f"limit must be a whole number >= 1 (or None = all), not {limit!r}")
    if limit < 1:
        raise QueryError(f"limit must be >= 1 (the most objects to return), got {limit}")
    return int(limit)


def _check_strings(**values) -> None:
    for what, value in values.items():
        if not isinstance(value, str):
            raise QueryError(f"{what} must be a string, not {type(value).__name__}")


def _volume(obj: TrackedObject, noise: DepthNoiseModel) -> tuple[float, float]:
    size = np.maximum(np.asarray(obj.size, dtype=np.float64), 0.0)
    partials = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]])
    sigmas = np.array([q.extent_sigma(obj, noise, i) for i in range(3)])
    return float(np.prod(size)), float(np.linalg.norm(partials * sigmas))


def order_value(key: str, obj: TrackedObject, reference: TrackedObject | None, scene: Scene,
                noise: DepthNoiseModel) -> tuple[float, float]:
    """``(value, sigma)`` of order key ``key`` for ``obj`` (metres; m^3 for volume)."""
    spec = ORDER_KEYS[key]
    if spec.needs_reference and reference is None:
        raise QueryError(f"order key '{key}' needs a reference object")
    measures: dict[str, Callable[[], q.Quantity]] = {
        "distance_to_camera": lambda: q.measure("distance_to_camera", obj, None, scene, noise),
        "distance_to_reference": lambda: q.measure("distance", obj, reference, scene, noise),
        "gap_to_reference": lambda: q.measure("gap", obj, reference, scene, noise),
        "horizontal_distance_to_reference": lambda: q.measure("horizontal_distance", obj, reference, scene,
                                                              noise),
        "height": lambda: q.measure("height", obj, None, scene, noise),
        "width": lambda: q.measure("width", obj, None, scene, noise),
        "depth": lambda: q.measure("depth", obj, None, scene, noise),
    }
    if key in measures:
        m = measures[key]()
        return m.value_m, m.uncertainty_m
    if key == "volume":
        return _volume(obj, noise)
    if key == "elevation":
        up = scene.gravity.up
        return float(scene.center_gravity(obj)[2]), q.center_sigma(obj, noise, up, up)
    if key == "camera_x":
        return float(obj.center[0]), q.center_sigma(obj, noise, np.array([1.0, 0.0, 0.0]), scene.gravity.up)
    surface = default_surface(scene)                          # distance_to_edge
    if surface is None:
        raise QueryError("order key 'distance_to_edge' needs a measured support surface (none in this scene: "
                         "up is static or assumed)")
    d = distance_to_edge(obj, surface, scene, noise)
    return d.value_m, d.uncertainty_m


def find_objects(scene: Scene, relation: str = "", reference: str = "", label_filter: str = "",
                 order_by: str = "", limit: int | None = None, noise: DepthNoiseModel | None = None,
                 params: RelationParams | None = None) -> FindResult:
    """The scene's objects that satisfy ``relation`` to ``reference`` (both optional; see the module
    docstring), filtered by ``label_filter`` (a name phrase, "" = all), ordered by ``order_by`` (see
    ``parse_order``; "" = by relation confidence, else the scene's order) and cut to ``limit`` (None = all).
    A reference without a relation or order orders by ``distance_to_reference``.

    Raises ``QueryError`` for an unknown relation or order key, a relation or reference-based key without a
    reference, ``limit`` < 1 or an empty scene; ``ResolutionError`` for an unknown or ambiguous reference.
    """
    noise = noise or DepthNoiseModel()
    limit = _check_limit(limit)
    _check_strings(relation=relation, reference=reference, label_filter=label_filter)
    rel = canonical_relation(relation) if relation.strip() else ""
    key, descending = parse_order(order_by, has_reference=bool(reference.strip()))
    if not scene.objects:
        raise QueryError("the scene is empty: no objects to search")
    ref = resolve(reference.strip(), with_surfaces(scene)) if reference.strip() else None
    if ref is not None and not rel and not key:
        key, descending = "distance_to_reference", False
    if ref is None and (rel or (key and ORDER_KEYS[key].needs_reference)):
        raise QueryError(f"{'relation ' + repr(rel) if rel else 'order key ' + repr(key)} needs a reference "
                         "object (e.g. 'the box', 'table')")
    pool = [o for o in scene.objects if not is_surface(o)]
    candidates = matches(label_filter.strip(), pool) if label_filter.strip() else pool
    candidates = [o for o in candidates if ref is None or o.id != ref.id]
    found = _matches(candidates, rel, ref, key, scene, noise, params)
    if key:
        found.sort(key=lambda m: -m.value if descending else m.value)
    elif rel:
        found.sort(key=lambda m: (-m.confidence, -m.margin_m))
    order_conf = 1.0
    if key and len(found) >= 2:
        first, second = found[0], found[1]
        order_conf = confidence_from_margin(second.value - first.value, math.hypot(first.sigma, second.sigma))
    shown = found[:limit] if limit else found
    return FindResult(tuple(shown), rel, ref.id if ref is not None else "", key, bool(descending),
                      float(order_conf), len(candidates),
                      _explain(len(shown), len(candidates), rel, ref, label_filter.strip(), key, descending,
                               order_conf))


def _explain(shown: int, considered: int, rel: str, ref: TrackedObject | None, label_filter: str, key: str,
             descending: bool, order_conf: float) -> str:
    parts = [f"{shown} of {considered} candidate(s)"]
    if rel and ref is not None:
        parts.append(f"{rel} {ref.id}")
    if label_filter:
        parts.append(f"label filter '{label_filter}'")
    if key:
        parts.append(f"ordered by {key} ({'descending' if descending else 'ascending'}; first is first with "
                     f"confidence {order_conf:.2f})")
    return "; ".join(parts)


def _matches(candidates: list[TrackedObject], rel: str, ref: TrackedObject | None, key: str, scene: Scene,
             noise: DepthNoiseModel, params: RelationParams | None) -> list[Match]:
    """The candidates for which ``rel`` to ``ref`` holds (all without a relation), with their order values."""
    found: list[Match] = []
    for obj in candidates:
        confidence, margin = 1.0, 0.0
        if rel and ref is not None:
            result = evaluate(rel, obj, ref, scene, noise, params)
            if not result.holds:
                continue
            confidence, margin = result.confidence, result.margin_m
        value, sigma = order_value(key, obj, ref, scene, noise) if key else (0.0, 0.0)
        found.append(Match(obj, float(confidence), float(value), float(sigma), float(margin)))
    return found

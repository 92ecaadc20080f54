"""``SpatialQueries``: the ROS-free facade behind the node's services (list, relation, measure, ask, find,
check_placement).

Every request reads ONE memory snapshot, so an answer never mixes two frames. Bad requests (unknown or
ambiguous names, unknown relations or quantities, unparseable questions, wrong types) never raise: they come
back with ``success=False`` and a message that says what was wrong and, for names, lists the candidates.

Caveats (``_with_caveats``): a message names every object of the answer that was not seen in the newest frame
(kept from memory, how long ago), and when up was assumed rather than measured (``GravityFrame.assumed``)
every geometric answer says so, and where up came from, in its ``message`` and its ``answer``.

Confidences: yes/no and choice answers carry the relation's ``Phi(|margin| / sigma)``; metric answers carry the
probability that the true value lies within +-25% of the reported one under the Gaussian error model
(``2 Phi(0.25 |v| / sigma) - 1``, the SpatialRGPT-Bench criterion); existence answers the best detector score;
thresholded relations and placements their margin's ``Phi(|margin| / sigma)``; scene queries (``find``) each
object's relation confidence.

Names resolve against the scene's objects and its support surfaces (``table``, ``floor``:
``core.support_surface``), so every request can name them. Where the reference of "How high is A above B?" is a
surface, the answer is the signed gap from its top to A's bottom (``support_surface.height_above``).

Failures: ``success=False`` and ``kind=""``; a question no template matches also has ``recognised=False``
and a message starting with ``NOT_UNDERSTOOD`` (the node then asks its VLM, whose absence it reports in its own
words).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from . import answers
from .errors import QueryError, SpatialError
from .gravity_frame import GravityFrame
from .memory import SceneMemory
from .naming import display_name, matches, resolve, singular
from .noise import DepthNoiseModel
from .observation import TrackedObject
from .placement import PlacementParams, check_placement, check_size
from .quantities import QUANTITIES, canonical_quantity, measure, signed_difference
from .questions import EDGE_QUANTITY, Query, UnrecognisedQuestion, parse
from .relations import RELATIONS, RelationParams, canonical_relation, evaluate
from .scene import Scene
from .scene_queries import ORDER_KEYS, find_objects
from .support_surface import distance_to_edge, height_above, is_surface, near_edge, surface_named, with_surfaces
from .thresholds import ThresholdResult, evaluate_threshold, threshold_on, thresholded_relation
from .transforms import gravity_quaternion, multiply_quaternions

_LOG = logging.getLogger(__name__)
METRIC_TOLERANCE = 0.25           # relative band of the metric confidence
_NEGATIVE_DIFFERENCE = {"shorter_than", "thinner_than", "lower_than"}
NOT_UNDERSTOOD = "not understood"   # how the message of a question no template matches starts


@dataclass(frozen=True)
class RelationAnswer:
    success: bool
    message: str                  # explanation (margin, sigma) on success, the error otherwise
    holds: bool = False
    confidence: float = 0.0       # in [0.5, 1] on success
    answer: str = ""              # one sentence
    relation: str = ""            # canonical relation name
    subject_id: str = ""
    reference_id: str = ""
    margin_m: float = 0.0


@dataclass(frozen=True)
class MeasureAnswer:
    success: bool
    message: str
    value: float = 0.0            # metres
    uncertainty: float = 0.0      # one sigma, metres
    answer: str = ""
    quantity: str = ""            # canonical quantity name
    subject_id: str = ""
    reference_id: str = ""


@dataclass(frozen=True)
class AskAnswer:
    success: bool
    message: str
    answer: str = ""
    kind: str = ""                # yes_no, metric, choice, list or free; "" on failure
    yes: bool = False             # yes_no
    value: float = 0.0            # metric: metres (signed for "how much taller/higher ..."); free: a count;
                                  # list: the count, or the first object's order value for a superlative;
                                  # yes_no: a threshold's measured value, a placement's free width (metres)
    confidence: float = 0.0
    query: Query | None = None    # what the question was parsed into
    recognised: bool = True       # False: no template matched (a free-form question a VLM may answer)


@dataclass(frozen=True)
class FindAnswer:
    """``find``: the matching objects (never a support surface), best first, with per object the relation's
    confidence (1 without a relation) and the order key's value (metres, m^3 for volume; the relation margin
    in metres without an order key)."""

    success: bool
    message: str
    answer: str = ""
    objects: tuple[TrackedObject, ...] = ()
    confidences: tuple[float, ...] = ()
    values: tuple[float, ...] = ()
    relation: str = ""            # canonical relation ("" = none)
    reference_id: str = ""
    order_by: str = ""            # order key ("" = none)
    descending: bool = False
    order_confidence: float = 0.0  # P(the first object truly comes first by the order key); 1 if unordered
    gravity: GravityFrame | None = None   # of the scene answered from (the objects' box orientation)


@dataclass(frozen=True)
class PlacementAnswer:
    """``check_placement``: whether the box fits, with the margin and free width (metres) and the suggested
    pose (its center in the gravity frame and the camera optical frame, yaw about up in radians)."""

    success: bool
    message: str
    answer: str = ""
    fits: bool = False
    confidence: float = 0.0       # Phi(|margin| / sigma) on success
    margin_m: float = 0.0
    margin_sigma_m: float = 0.0
    free_width_m: float = 0.0
    center_gravity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    center_camera: tuple[float, float, float] = (0.0, 0.0, 0.0)
    yaw: float = 0.0
    orientation_camera: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)  # (x, y, z, w) of the box
                                  # axes (width x, depth y, height z up) in the camera optical frame
    location: str = ""            # canonical location (``placement.LOCATIONS``)
    reference_ids: tuple[str, ...] = ()
    support_id: str = ""          # what the box would stand on


T = TypeVar("T")


def metric_confidence(value_m: float, sigma_m: float) -> float:
    """P(|error| < 25% of |value|) for a Gaussian error of ``sigma_m``."""
    if sigma_m <= 0:
        return 1.0
    return max(0.0, math.erf(METRIC_TOLERANCE * abs(value_m) / (sigma_m * math.sqrt(2.0))))


def _text(value, what: str, required: bool = True) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise QueryError(f"{what} must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise QueryError(f"{what} is empty")
    return value.strip()


class SpatialQueries:
    """Answers spatial requests from ``memory`` with uncertainties from ``noise``."""

    def __init__(self, memory: SceneMemory, noise: DepthNoiseModel | None = None,
                 params: RelationParams | None = None):
        self.memory = memory
        self.noise = noise or DepthNoiseModel()
        self.params = params or RelationParams()

    # ------------------------------------------------------------------ services
    def list_objects(self, label_filter: str = "") -> list[TrackedObject]:
        """Objects matching ``label_filter`` (label, id, "red mug", plural...); all when empty; [] if none."""
        scene = self.memory.snapshot()
        if not isinstance(label_filter, str) or not label_filter.strip():
            return list(scene.objects) if not label_filter else []
        return matches(label_filter, scene.objects)

    def get_relation(self, subject: str, relation: str, reference: str, threshold_m: float | None = None
                     ) -> RelationAnswer:
        """``subject <relation> reference``; with ``threshold_m`` (metres) the thresholded relation of
        ``thresholds.THRESHOLD_RELATIONS`` ("within" 0.2: less than 20 cm apart; "taller_than" 0.05: more than
        5 cm taller)."""
        def run():
            if threshold_m is not None:
                return self._threshold_relation(subject, relation, reference, threshold_m)
            name = canonical_relation(_text(relation, "relation"))
            scene = self.memory.snapshot()
            a = resolve(_text(subject, "subject"), with_surfaces(scene))
            b = resolve(_text(reference, "reference"), with_surfaces(scene))
            result = evaluate(name, a, b, scene, self.noise, self.params)
            sentence = answers.relation_answer(result, display_name(a, scene.objects),
                                               display_name(b, scene.objects))
            message, sentence = _with_caveats(result.explanation, sentence, scene, (a, b))
            return RelationAnswer(True, message, result.holds, result.confidence, sentence, name,
                                  a.id, b.id, result.margin_m)
        return self._guard(run, lambda msg: RelationAnswer(False, msg))

    def measure(self, quantity: str, subject: str, reference: str = "") -> MeasureAnswer:
        def run():
            name = canonical_quantity(_text(quantity, "quantity"))
            scene = self.memory.snapshot()
            ref_text = _text(reference, "reference", required=False)
            if QUANTITIES[name].binary and not ref_text:
                raise QueryError(f"'{name}' needs a reference object")
            if not QUANTITIES[name].binary and ref_text:
                raise QueryError(f"'{name}' is measured on one object; leave the reference empty")
            a = resolve(_text(subject, "subject"), with_surfaces(scene))
            b = resolve(ref_text, with_surfaces(scene)) if ref_text else None
            result = measure(name, a, b, scene, self.noise)
            sentence = answers.quantity_answer(name, result.value_m, display_name(a, scene.objects),
                                               display_name(b, scene.objects) if b else "")
            message = f"{result.explanation}; value {result.value_m:.4f} m +- {result.uncertainty_m:.4f} m"
            message, sentence = _with_caveats(message, sentence, scene, (a, b))
            return MeasureAnswer(True, message, result.value_m, result.uncertainty_m, sentence, name, a.id,
                                 b.id if b else "")
        return self._guard(run, lambda msg: MeasureAnswer(False, msg))

    def ask(self, question: str) -> AskAnswer:
        """Answer a template question; ``recognised=False`` (with the parser's hint) when no template fits."""
        def run():
            try:
                query = parse(question)
            except UnrecognisedQuestion as err:
                return AskAnswer(False, f"{NOT_UNDERSTOOD}: {err}", recognised=False)
            scene = self.memory.snapshot()
            handler = {"relation": self._ask_relation, "choice": self._ask_choice, "quantity": self._ask_quantity,
                       "list": self._ask_list, "exists": self._ask_exists, "locate": self._ask_locate,
                       "dimensions": self._ask_dimensions, "find": self._ask_find,
                       "placement": self._ask_placement, "threshold": self._ask_threshold}[query.kind]
            return handler(query, scene)
        return self._guard(run, lambda msg: AskAnswer(False, msg))

    def find(self, relation: str = "", reference: str = "", label_filter: str = "", order_by: str = "",
             limit: int | None = None) -> FindAnswer:
        """Objects satisfying ``relation`` to ``reference``, filtered, ordered and cut (``scene_queries``)."""
        def run():
            scene = self.memory.snapshot()
            return self._find(scene, relation, reference, label_filter, order_by, limit)
        return self._guard(run, lambda msg: FindAnswer(False, msg))

    def check_placement(self, size, location: str, references=(), point=None, yaw: float | None = None,
                        clearance_m: float = 0.0) -> PlacementAnswer:
        """Can a box of ``size`` (w, d, h metres) go at ``location`` relative to ``references`` (or at the
        gravity-frame ``point``) with ``clearance_m`` of free space around it (``core.placement``)?"""
        def run():
            clearance = float(clearance_m)
            if not math.isfinite(clearance) or clearance < 0.0:
                raise QueryError(f"clearance must be a finite length >= 0 m, got {clearance_m!r}")
            scene = self.memory.snapshot()
            return self._placement(scene, size, location, references, point, yaw, clearance)
        return self._guard(run, lambda msg: PlacementAnswer(False, msg))

    # ------------------------------------------------------------------ find, placement, thresholds
    def _find(self, scene: Scene, relation, reference, label_filter, order_by, limit) -> FindAnswer:
        result = find_objects(scene, relation, reference, label_filter, order_by, limit, self.noise, self.params)
        everything = with_surfaces(scene)
        ref = next((o for o in everything if o.id == result.reference_id), None)
        names = [display_name(m.object, scene.objects) for m in result.matches]
        values = tuple(m.value if result.order_by else m.margin_m for m in result.matches)
        label = _singular_phrase(label_filter) if isinstance(label_filter, str) and label_filter.strip() else ""
        sentence = answers.find_answer(names, values, result.relation,
                                       display_name(ref, everything) if ref is not None else "", result.order_by,
                                       result.descending, limit or 0, label)
        message, sentence = _with_caveats(result.explanation, sentence, scene, [m.object for m in result.matches]
                                          + [ref], up=bool(result.relation or result.order_by in _GRAVITY_KEYS))
        order_conf = result.order_confidence if result.order_by else 1.0
        return FindAnswer(True, message, sentence, tuple(m.object for m in result.matches),
                          tuple(m.confidence for m in result.matches), values, result.relation,
                          result.reference_id, result.order_by, result.descending, order_conf, scene.gravity)

    def _placement(self, scene: Scene, size, location, references, point, yaw, clearance: float
                   ) -> PlacementAnswer:
        result = check_placement(scene, size, location, references, point, yaw, self.noise,
                                 PlacementParams(clearance_m=clearance))
        everything = with_surfaces(scene)
        refs = [next(o for o in everything if o.id == rid) for rid in result.reference_ids]
        names = [display_name(r, everything) for r in refs]
        where = {"between": f"between {' and '.join(names)}", "on": f"on {names[0]}" if names else "",
                 "at": "at that point"}.get(result.location, "")
        if not where:
            where = f"{RELATIONS[result.location].phrase} {names[0]}"
        sentence = answers.placement_answer(result.fits, result.confidence, list(check_size(size)), where,
                                            result.free_width_m, result.margin_m, result.limiting)
        message, sentence = _with_caveats(result.explanation, sentence, scene, refs)
        pose = result.pose
        turn = (0.0, 0.0, math.sin(pose.yaw / 2), math.cos(pose.yaw / 2))      # about the gravity frame's z (up)
        qx, qy, qz, qw = (float(v) for v in multiply_quaternions(gravity_quaternion(scene.gravity), turn))
        return PlacementAnswer(True, message, sentence, result.fits, result.confidence, _finite_or(result.margin_m),
                               result.sigma_m, result.free_width_m, _triple(pose.center_g), _triple(pose.center_c),
                               pose.yaw, (qx, qy, qz, qw), result.location,
                               result.reference_ids, result.support_id)

    def _threshold_relation(self, subject, relation, reference, threshold_m) -> RelationAnswer:
        quantity, comparison = thresholded_relation(_text(relation, "relation"))
        scene = self.memory.snapshot()
        a = resolve(_text(subject, "subject"), with_surfaces(scene))
        b = resolve(_text(reference, "reference"), with_surfaces(scene))
        result = evaluate_threshold(quantity, comparison, threshold_m, a, b, scene, self.noise)
        sentence = answers.threshold_answer(result.holds, result.confidence, display_name(a, scene.objects),
                                            _threshold_phrase(result, display_name(b, with_surfaces(scene))),
                                            _value_text(result))
        message, sentence = _with_caveats(result.explanation, sentence, scene, (a, b))
        name = "_".join(relation.strip().lower().split())
        return RelationAnswer(True, message, result.holds, result.confidence, sentence, name, a.id, b.id,
                              result.margin_m)

    def _ask_find(self, query: Query, scene: Scene) -> AskAnswer:
        found = self._find(scene, query.relation, query.reference, query.subject, query.order_by,
                           query.limit or None)
        confidence = min(found.confidences, default=1.0)
        if found.order_by and found.objects:
            confidence = min(confidence, found.order_confidence)
        value = found.values[0] if found.order_by and query.limit == 1 and found.values else float(len(found.objects))
        return AskAnswer(True, found.message, found.answer, "list", bool(found.objects), value, confidence, query)

    def _ask_placement(self, query: Query, scene: Scene) -> AskAnswer:
        placed = self._placement(scene, query.size, query.relation, query.options, None, None, 0.0)
        return AskAnswer(True, placed.message, placed.answer, "yes_no", placed.fits, placed.free_width_m,
                         placed.confidence, query)

    def _ask_threshold(self, query: Query, scene: Scene) -> AskAnswer:
        a = resolve(query.subject, with_surfaces(scene))
        if query.quantity == EDGE_QUANTITY:
            surface = self._surface(scene, query.reference)
            if query.comparison == "near":
                result = near_edge(a, surface, scene, self.noise)
            else:
                result = threshold_on(distance_to_edge(a, surface, scene, self.noise), query.comparison,
                                      query.threshold_m, a.id)
            b = None
            phrase = (f"near the edge of the {surface.name}" if query.comparison == "near" else
                      f"{_cmp_word(result.comparison, 'distance')} {answers.format_length(result.threshold_m)} of "
                      f"the edge of the {surface.name}")
        else:
            b = resolve(query.reference, with_surfaces(scene)) if query.reference else None
            result = evaluate_threshold(query.quantity, query.comparison, query.threshold_m, a, b, scene, self.noise)
            phrase = _threshold_phrase(result, display_name(b, with_surfaces(scene)) if b is not None else "")
        sentence = answers.threshold_answer(result.holds, result.confidence, display_name(a, scene.objects), phrase,
                                            _value_text(result))
        message, sentence = _with_caveats(result.explanation, sentence, scene, (a, b))
        return AskAnswer(True, message, sentence, "yes_no", result.holds, result.value_m, result.confidence, query)

    def _surface(self, scene: Scene, name: str):
        surface = surface_named(scene, name or "table")
        if surface is None:
            known = ", ".join(o.id for o in with_surfaces(scene) if is_surface(o)) or "none"
            raise QueryError(f"no {name or 'table'} surface is measured in this scene (surfaces: {known}; the "
                             f"support plane is fitted only with gravity mode 'plane')")
        return surface

    # ------------------------------------------------------------------ ask, per kind
    def _ask_relation(self, query: Query, scene: Scene) -> AskAnswer:
        a, b = resolve(query.subject, with_surfaces(scene)), resolve(query.reference, with_surfaces(scene))
        result = evaluate(query.relation, a, b, scene, self.noise, self.params)
        sentence = answers.relation_answer(result, display_name(a, scene.objects), display_name(b, scene.objects))
        message, sentence = _with_caveats(result.explanation, sentence, scene, (a, b))
        return AskAnswer(True, message, sentence, "yes_no", result.holds, 0.0, result.confidence, query)

    def _ask_choice(self, query: Query, scene: Scene) -> AskAnswer:
        a, b = resolve(query.options[0], with_surfaces(scene)), resolve(query.options[1], with_surfaces(scene))
        ab = evaluate(query.relation, a, b, scene, self.noise, self.params)
        ba = evaluate(query.relation, b, a, scene, self.noise, self.params)
        name_a, name_b = display_name(a, scene.objects), display_name(b, scene.objects)
        if ab.holds and (not ba.holds or ab.margin_m >= ba.margin_m):
            winner, result, sentence = a, ab, answers.choice_answer(query.relation, name_a, name_b)
        elif ba.holds:
            winner, result, sentence = b, ba, answers.choice_answer(query.relation, name_b, name_a)
        else:
            winner, result = None, (ab if ab.confidence <= ba.confidence else ba)
            sentence = answers.choice_answer(query.relation, None, None, (name_a, name_b))
        chosen = winner.id if winner else "neither"
        message, sentence = _with_caveats(f"{chosen}; {result.explanation}", sentence, scene, (a, b))
        return AskAnswer(True, message, sentence, "choice", False, 0.0, result.confidence, query)

    def _ask_quantity(self, query: Query, scene: Scene) -> AskAnswer:
        everything = with_surfaces(scene)
        a = resolve(query.subject, everything)
        if query.quantity == EDGE_QUANTITY:
            surface = self._surface(scene, query.reference)
            d = distance_to_edge(a, surface, scene, self.noise)
            where = "inside" if d.value_m >= 0 else "outside"
            sentence = answers.sentence(f"{display_name(a, scene.objects)} is {answers.format_length(d.value_m)} "
                                        f"from the edge of the {surface.name} ({where})")
            message, sentence = _with_caveats(f"{d.explanation}; {d.value_m:.4f} m +- {d.uncertainty_m:.4f} m",
                                              sentence, scene, (a,))
            return AskAnswer(True, message, sentence, "metric", False, d.value_m,
                             metric_confidence(d.value_m, d.uncertainty_m), query)
        b = resolve(query.reference, everything) if query.reference else None
        name_a = display_name(a, everything)
        name_b = display_name(b, everything) if b else ""
        if b is not None and is_surface(b) and query.quantity == "vertical_distance" and query.relation:
            gap = height_above(a, b, scene, self.noise)
            value = -gap.value_m if query.relation in _NEGATIVE_DIFFERENCE else gap.value_m
            sentence = answers.height_above_answer(gap.value_m, gap.uncertainty_m, name_a, name_b)
            message, sentence = _with_caveats(f"{gap.explanation}; {value:+.4f} m +- {gap.uncertainty_m:.4f} m",
                                              sentence, scene, (a, b))
            return AskAnswer(True, message, sentence, "metric", False, value,
                             metric_confidence(value, gap.uncertainty_m), query)
        if query.relation:
            if b is None:
                raise QueryError(f"'{query.relation}' needs a reference object")
            diff = signed_difference(query.quantity, a, b, scene, self.noise)
            value = -diff.value_m if query.relation in _NEGATIVE_DIFFERENCE else diff.value_m
            sentence = answers.difference_answer(query.relation, value, name_a, name_b)
            message, sentence = _with_caveats(f"{diff.explanation}; {value:+.4f} m +- {diff.uncertainty_m:.4f} m",
                                              sentence, scene, (a, b))
            return AskAnswer(True, message, sentence, "metric", False, value,
                             metric_confidence(value, diff.uncertainty_m), query)
        result = measure(query.quantity, a, b, scene, self.noise)
        sentence = answers.quantity_answer(result.name, result.value_m, name_a, name_b)
        message, sentence = _with_caveats(f"{result.explanation}; {result.value_m:.4f} m +- "
                                          f"{result.uncertainty_m:.4f} m", sentence, scene, (a, b))
        return AskAnswer(True, message, sentence, "metric", False, result.value_m,
                         metric_confidence(result.value_m, result.uncertainty_m), query)

    def _ask_list(self, query: Query, scene: Scene) -> AskAnswer:
        found = matches(query.subject, scene.objects) if query.subject else list(scene.objects)
        names = [_list_name(o) for o in found]
        noun = _singular_phrase(query.subject) if query.subject else "object"
        message, sentence = _with_caveats(f"{len(found)} matching objects", answers.list_answer(names, noun),
                                          scene, found, up=False)
        return AskAnswer(True, message, sentence, "free", False, float(len(found)), 1.0, query)

    def _ask_exists(self, query: Query, scene: Scene) -> AskAnswer:
        found = matches(query.subject, scene.objects)
        names = [_list_name(o) for o in found]
        confidence = max((float(o.score) for o in found), default=1.0)
        message, sentence = _with_caveats(f"{len(found)} matching objects",
                                          answers.exists_answer(names, _singular_phrase(query.subject)), scene,
                                          found, up=False)
        return AskAnswer(True, message, sentence, "yes_no", bool(found), float(len(found)), confidence, query)

    def _ask_locate(self, query: Query, scene: Scene) -> AskAnswer:
        a = resolve(query.subject, with_surfaces(scene))
        rng = measure("distance_to_camera", a, None, scene, self.noise)
        sentence = answers.locate_answer(a, display_name(a, scene.objects), scene)
        message, sentence = _with_caveats(f"{a.id}: center {[round(float(c), 4) for c in a.center]} m (camera "
                                          "frame)", sentence, scene, (a,))
        return AskAnswer(True, message, sentence, "free", False, rng.value_m,
                         metric_confidence(rng.value_m, rng.uncertainty_m), query)

    def _ask_dimensions(self, query: Query, scene: Scene) -> AskAnswer:
        a = resolve(query.subject, with_surfaces(scene))
        sizes = [measure(name, a, None, scene, self.noise) for name in ("width", "depth", "height")]
        detail = ", ".join(f"{q.name} {q.value_m:.4f} m +- {q.uncertainty_m:.4f} m" for q in sizes)
        confidence = min(metric_confidence(q.value_m, q.uncertainty_m) for q in sizes)
        message, sentence = _with_caveats(f"{a.id}: {detail}", answers.dimensions_answer(
            a, display_name(a, scene.objects)), scene, (a,))
        return AskAnswer(True, message, sentence, "free", False, 0.0, confidence, query)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _guard(run: Callable[[], T], failure: Callable[[str], T]) -> T:
        try:
            return run()
        except SpatialError as err:
            return failure(str(err))
        except Exception as err:   # a service must always answer; the traceback goes to the log
            _LOG.exception("internal error while answering a spatial request")
            return failure(f"internal error: {type(err).__name__}: {err}")


def _with_caveats(message: str, sentence: str, scene: Scene, objects, up: bool = True) -> tuple[str, str]:
    """(message, sentence) of an answer about ``objects`` (None entries skipped) with its caveats: in the
    message, the objects not seen in the newest frame; with ``up`` (a geometric answer: every box, height and
    direction is taken in the gravity frame), an assumed up in both."""
    notes = [answers.unseen_note(o, scene.stamp) for o in objects if o is not None]
    if up and scene.gravity.assumed:
        notes.append(answers.up_note(scene.gravity))
        sentence = answers.with_up_note(sentence, scene.gravity)
    return "; ".join([message, *filter(None, notes)]), sentence


_GRAVITY_KEYS = frozenset(k for k in ORDER_KEYS if k not in ("distance_to_camera", "distance_to_reference",
                                                             "gap_to_reference", "camera_x"))


def _finite_or(value: float, default: float = 0.0) -> float:
    return float(value) if math.isfinite(value) else default


def _triple(v) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])


_THRESHOLD_WORDS = {"distance": "of", "gap": "of", "horizontal_distance": "of", "vertical_distance": "of"}


def _cmp_word(comparison: str, quantity: str) -> str:
    if comparison == "less_than":
        return "within" if quantity in _THRESHOLD_WORDS or quantity in ("distance_to_camera", EDGE_QUANTITY) \
            else "less than"
    return "more than"


def _threshold_phrase(result: ThresholdResult, reference: str) -> str:
    """"within 20 cm of the bowl", "more than 5 cm taller than the can", "more than 1 m from the camera"."""
    t = answers.format_length(result.threshold_m)
    cmp = _cmp_word(result.comparison, result.quantity)
    if result.quantity == "distance_to_camera":
        return f"{cmp} {t} {'of' if result.comparison == 'less_than' else 'from'} the camera"
    if result.quantity in QUANTITIES:
        return f"{cmp} {t} {'of' if result.comparison == 'less_than' else 'from'} {reference}"
    return f"{cmp} {t} {result.quantity} than {reference}"


def _value_text(result: ThresholdResult) -> str:
    if result.quantity in QUANTITIES or result.quantity == EDGE_QUANTITY:
        return f"{answers.format_length(result.value_m)}"
    sign = result.quantity if result.value_m >= 0 else "the other way"
    return f"{answers.format_length(result.value_m)} {sign}"


def _list_name(obj: TrackedObject) -> str:
    color = f"{obj.color_name} " if obj.color_name and obj.color_name not in obj.label.split() else ""
    words = f"{color}{obj.label}"
    return f"{'an' if words[:1].lower() in 'aeiou' else 'a'} {words} ({obj.id})"


def _singular_phrase(phrase: str) -> str:
    words = phrase.split()
    return " ".join(words[:-1] + [singular(words[-1])]) if words else "object"

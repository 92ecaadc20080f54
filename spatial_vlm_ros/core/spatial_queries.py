"""``SpatialQueries``: the ROS-free facade behind the node's services (list, relation, measure, ask).

Every request reads ONE memory snapshot, so an answer never mixes two frames. Bad requests (unknown or
ambiguous names, unknown relations or quantities, unparseable questions, wrong types) never raise: they come
back with ``success=False`` and a message that says what was wrong and, for names, lists the candidates.

Caveats (``_with_caveats``): a message names every object of the answer that was not seen in the newest frame
(kept from memory, how long ago), and when up was assumed rather than measured (``GravityFrame.assumed``)
every geometric answer says so, and where up came from, in its ``message`` and its ``answer``.

Confidences: yes/no and choice answers carry the relation's ``Phi(|margin| / sigma)``; metric answers carry the
probability that the true value lies within +-25% of the reported one under the Gaussian error model
(``2 Phi(0.25 |v| / sigma) - 1``, the SpatialRGPT-Bench criterion); existence answers the best detector score.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from . import answers
from .errors import QueryError, SpatialError
from .memory import SceneMemory
from .naming import display_name, matches, resolve, singular
from .noise import DepthNoiseModel
from .observation import TrackedObject
from .quantities import QUANTITIES, canonical_quantity, measure, signed_difference
from .questions import Query, UnrecognisedQuestion, parse
from .relations import RelationParams, canonical_relation, evaluate
from .scene import Scene

_LOG = logging.getLogger(__name__)
METRIC_TOLERANCE = 0.25           # relative band of the metric confidence
_NEGATIVE_DIFFERENCE = {"shorter_than", "thinner_than", "lower_than"}


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
    kind: str = "free"            # yes_no, metric, choice or free
    yes: bool = False             # yes_no
    value: float = 0.0            # metric: metres (signed for "how much taller/higher ..."); free: a count
    confidence: float = 0.0
    query: Query | None = None    # what the question was parsed into
    recognised: bool = True       # False: no template matched (a free-form question a VLM may answer)


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

    def get_relation(self, subject: str, relation: str, reference: str) -> RelationAnswer:
        def run():
            name = canonical_relation(_text(relation, "relation"))
            scene = self.memory.snapshot()
            a = resolve(_text(subject, "subject"), scene.objects)
            b = resolve(_text(reference, "reference"), scene.objects)
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
            a = resolve(_text(subject, "subject"), scene.objects)
            b = resolve(ref_text, scene.objects) if ref_text else None
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
                return AskAnswer(False, str(err), recognised=False)
            scene = self.memory.snapshot()
            handler = {"relation": self._ask_relation, "choice": self._ask_choice, "quantity": self._ask_quantity,
                       "list": self._ask_list, "exists": self._ask_exists, "locate": self._ask_locate,
                       "dimensions": self._ask_dimensions}[query.kind]
            return handler(query, scene)
        return self._guard(run, lambda msg: AskAnswer(False, msg))

    # ------------------------------------------------------------------ ask, per kind
    def _ask_relation(self, query: Query, scene: Scene) -> AskAnswer:
        a, b = resolve(query.subject, scene.objects), resolve(query.reference, scene.objects)
        result = evaluate(query.relation, a, b, scene, self.noise, self.params)
        sentence = answers.relation_answer(result, display_name(a, scene.objects), display_name(b, scene.objects))
        message, sentence = _with_caveats(result.explanation, sentence, scene, (a, b))
        return AskAnswer(True, message, sentence, "yes_no", result.holds, 0.0, result.confidence, query)

    def _ask_choice(self, query: Query, scene: Scene) -> AskAnswer:
        a, b = resolve(query.options[0], scene.objects), resolve(query.options[1], scene.objects)
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
        a = resolve(query.subject, scene.objects)
        b = resolve(query.reference, scene.objects) if query.reference else None
        name_a = display_name(a, scene.objects)
        name_b = display_name(b, scene.objects) if b else ""
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
        a = resolve(query.subject, scene.objects)
        rng = measure("distance_to_camera", a, None, scene, self.noise)
        sentence = answers.locate_answer(a, display_name(a, scene.objects), scene)
        message, sentence = _with_caveats(f"{a.id}: centre {[round(float(c), 4) for c in a.center]} m (camera "
                                          "frame)", sentence, scene, (a,))
        return AskAnswer(True, message, sentence, "free", False, rng.value_m,
                         metric_confidence(rng.value_m, rng.uncertainty_m), query)

    def _ask_dimensions(self, query: Query, scene: Scene) -> AskAnswer:
        a = resolve(query.subject, scene.objects)
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


def _list_name(obj: TrackedObject) -> str:
    colour = f"{obj.color_name} " if obj.color_name and obj.color_name not in obj.label.split() else ""
    words = f"{colour}{obj.label}"
    return f"{'an' if words[:1].lower() in 'aeiou' else 'a'} {words} ({obj.id})"


def _singular_phrase(phrase: str) -> str:
    words = phrase.split()
    return " ".join(words[:-1] + [singular(words[-1])]) if words else "object"

"""SpatialVLM-style question templates over a lifted scene: every answer is decided by the package's own
``core.relations.evaluate`` and ``core.quantities.measure``; nothing here computes geometry.

Kinds (the ``kind`` column):
- ``yes_no``: "Is the red box to the left of the blue cylinder?" for every relation of ``core.relations.RELATIONS``
  over ordered pairs; per frame and relation as many "No" as "Yes" questions are kept (``balance_yes_no``);
- ``choice``: "Which is closer to the camera, the red box or the blue cylinder?" for the comparative relations of
  ``CHOICE_PHRASES``; the answer names the object for which the relation holds;
- ``metric``: "How far apart are the red box and the blue cylinder?" for every quantity of
  ``core.quantities.QUANTITIES`` (pairs or single objects), answered in human units (``units.human_length``)
  with the exact value in ``value_m``;
- ``describe``: ``DESCRIBE_PROMPT`` ("Where is the {a} relative to the {b}?") answered with exactly
  ``evaluation.whatsup_sets.caption(a, preposition, b)``, the preposition one of left of / right of / in front of
  / behind / on / under (``describe_preposition``).

Ambiguity: a relation whose confidence (``Phi(|margin| / sigma)`` of the noise model) is below
``min_confidence`` yields no question; objects whose label is not unique in the frame are never named; a
metric value below ``min_metric_m`` yields no question. Questions are worded so that ``core.questions.parse``
reads them back as the same relation / quantity. Several phrasings of each are drawn per question from a
generator seeded by (seed, source, frame index), so the output is deterministic for a seed and independent of
how frames are split across workers. ``truth_answer`` is decided the same way from the simulator's truth.
"""
from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.quantities import QUANTITIES, measure
from spatial_vlm_ros.core.relations import RELATIONS, RelationParams, evaluate
from spatial_vlm_ros.core.scene import Scene
from spatial_vlm_ros.core.spatial_queries import metric_confidence
from spatial_vlm_ros.evaluation.whatsup_sets import caption

from .frames import FrameTruth, frame_seed
from .lift import LiftedFrame
from .schema import KINDS
from .units import human_length

NAN = float("nan")
DESCRIBE_PROMPT = "Where is the {a} relative to the {b}?"
#: describe prepositions decided by one camera-frame relation of (subject, reference)
DESCRIBE_SIDE = (("left of", "left_of"), ("right of", "right_of"), ("in front of", "in_front_of"),
                 ("behind", "behind"))

YES_NO_PHRASINGS = (
    "Is the {a} {p} the {b}?",
    "Is it true that the {a} is {p} the {b}?",
    "Can you confirm that the {a} is {p} the {b}?",
    "Does the {a} appear to be {p} the {b}?",
)
#: comparative relation -> the word of "which is <word>, A or B" (``core.questions.CHOICE_WORDS``)
CHOICE_PHRASES = {
    "closer_to_camera": "closer to the camera", "farther_from_camera": "farther from the camera",
    "taller_than": "taller", "shorter_than": "shorter", "bigger_than": "bigger", "smaller_than": "smaller",
    "wider_than": "wider", "thinner_than": "thinner", "higher_than": "higher up", "lower_than": "lower down",
    "left_of": "more to the left", "right_of": "more to the right", "in_front_of": "more in front",
    "behind": "further back",
}
CHOICE_PHRASINGS = (
    "Which is {c}, the {a} or the {b}?",
    "Which of the {a} and the {b} is {c}?",
    "Between the {a} and the {b}, which one is {c}?",
)
METRIC_PHRASINGS = {
    "distance": ("How far apart are the {a} and the {b}?", "What is the distance between the {a} and the {b}?",
                 "How far is the {a} from the {b}?"),
    "gap": ("What is the gap between the {a} and the {b}?", "How much space is there between the {a} and the {b}?"),
    "horizontal_distance": ("What is the horizontal distance between the {a} and the {b}?",
                            "How far apart are the {a} and the {b} horizontally?"),
    "vertical_distance": ("What is the vertical distance between the {a} and the {b}?",
                          "How far apart are the {a} and the {b} vertically?"),
    "width": ("How wide is the {a}?", "What is the width of the {a}?"),
    "depth": ("How deep is the {a}?", "What is the depth of the {a}?"),
    "height": ("How tall is the {a}?", "What is the height of the {a}?"),
    "distance_to_camera": ("How far is the {a} from the camera?", "What is the distance from the camera to the {a}?"),
}


@dataclass(frozen=True)
class SynthesisConfig:
    """What to ask and how strict the ambiguity filter is (confidences in [0.5, 1], lengths in metres).
    ``max_per_frame`` > 0 keeps a random subset of that many questions per frame; ``noise`` and ``relations``
    must be the lifting pipeline's noise model and relation tolerances (defaults: the package's)."""

    min_confidence: float = 0.95
    kinds: tuple[str, ...] = KINDS
    relations: tuple[str, ...] = tuple(RELATIONS)
    choice_relations: tuple[str, ...] = tuple(CHOICE_PHRASES)
    quantities: tuple[str, ...] = tuple(QUANTITIES)
    min_metric_m: float = 0.01
    describe_dominance: float = 1.5      # describe: the chosen side's margin over the other axis' margin
    balance_yes_no: bool = True
    max_per_frame: int = 0
    noise: DepthNoiseModel = field(default_factory=DepthNoiseModel)
    relation_params: RelationParams = field(default_factory=RelationParams)

    def validate(self) -> SynthesisConfig:
        if not 0.5 <= self.min_confidence <= 1.0:
            raise InputError("min_confidence must be in [0.5, 1]")
        for what, names, known in (("kind", self.kinds, KINDS), ("relation", self.relations, RELATIONS),
                                   ("choice relation", self.choice_relations, CHOICE_PHRASES),
                                   ("quantity", self.quantities, QUANTITIES)):
            bad = [n for n in names if n not in known]
            if bad:
                raise InputError(f"unknown {what}(s) {', '.join(bad)} (known: {', '.join(known)})")
        if not self.kinds:
            raise InputError("no question kinds selected")
        if self.min_metric_m < 0 or self.describe_dominance < 1.0 or self.max_per_frame < 0:
            raise InputError("need min_metric_m >= 0, describe_dominance >= 1 and max_per_frame >= 0")
        return self


@dataclass(frozen=True)
class Outcome:
    """A relation's outcome for (subject, reference): margin and sigma in metres, confidence in [0.5, 1]."""

    holds: bool
    margin_m: float
    sigma_m: float
    confidence: float


class Judge(Protocol):
    """Decides relations and measures quantities between objects named by their (unique) labels."""

    def relation(self, name: str, a: str, b: str) -> Outcome | None: ...

    def quantity(self, name: str, a: str, b: str | None) -> tuple[float, float] | None: ...


class GeometryJudge:
    """Outcomes from objects and their scene through ``core.relations.evaluate`` / ``core.quantities.measure``,
    each computed once."""

    def __init__(self, scene: Scene, labels: dict[str, object], noise: DepthNoiseModel,
                 params: RelationParams):
        self.scene, self.objects, self.noise, self.params = scene, labels, noise, params
        self._rel: dict = {}
        self._qty: dict = {}

    def relation(self, name: str, a: str, b: str) -> Outcome | None:
        """``a <name> b``. A relation with an inverse in the table is evaluated once per pair: ``R(a, b)`` IS
        ``inverse(R)(b, a)`` by definition (``RelationSpec.inverse``, the mirrored predicate), so both keys
        share the one ``evaluate`` result."""
        key = (name, a, b)
        if key not in self._rel:
            oa, ob = self.objects.get(a), self.objects.get(b)
            if oa is None or ob is None:
                self._rel[key] = None
            else:
                r = evaluate(name, oa, ob, self.scene, self.noise, self.params)
                self._rel[key] = Outcome(r.holds, r.margin_m, r.sigma_m, r.confidence)
                inverse = RELATIONS[name].inverse
                if inverse:
                    self._rel[(inverse, b, a)] = self._rel[key]
        return self._rel[key]

    def quantity(self, name: str, a: str, b: str | None) -> tuple[float, float] | None:
        key = (name, a, b)
        if key not in self._qty:
            oa, ob = self.objects.get(a), (self.objects.get(b) if b is not None else None)
            if oa is None or (b is not None and ob is None):
                self._qty[key] = None
            else:
                q = measure(name, oa, ob, self.scene, self.noise)
                self._qty[key] = (q.value_m, q.uncertainty_m)
        return self._qty[key]


class TableJudge:
    """Outcomes read from a ground-truth frame (docs/ground_truth_format.md), which the simulator computed with
    the same ``core`` functions on the true geometry; objects named by their unique labels."""

    def __init__(self, frame: dict):
        from spatial_vlm_ros.evaluation.truth_queries import askable_objects, label_names
        ids = {label: oid for oid, label in label_names(askable_objects(frame)).items()}
        self._rel = {(r["relation"], r["subject"], r["reference"]): r for r in frame.get("relations", [])}
        self._qty = {}
        for q in frame.get("quantities", []):
            self._qty[(q["quantity"], q["subject"], q.get("reference"))] = float(q["value_m"])
            if q.get("reference") is not None:      # binary quantities are symmetric
                self._qty[(q["quantity"], q["reference"], q["subject"])] = float(q["value_m"])
        self.ids = ids

    def relation(self, name: str, a: str, b: str) -> Outcome | None:
        r = self._rel.get((name, self.ids.get(a), self.ids.get(b)))
        if r is None:
            return None
        margin, sigma = float(r.get("margin_m", NAN)), float(r.get("sigma_m", NAN))
        return Outcome(bool(r["holds"]), margin, sigma, 1.0)

    def quantity(self, name: str, a: str, b: str | None) -> tuple[float, float] | None:
        value = self._qty.get((name, self.ids.get(a), self.ids.get(b) if b is not None else None))
        return None if value is None else (value, 0.0)


def truth_judge(truth: FrameTruth | None, config: SynthesisConfig) -> Judge | None:
    """The judge of a frame's ground truth, or None when the frame has none."""
    if truth is None:
        return None
    if truth.table:
        return TableJudge(truth.table)
    if truth.objects and truth.gravity is not None:
        counts = Counter(o.label for o in truth.objects)
        labels = {o.label: o for o in truth.objects if counts[o.label] == 1}
        return GeometryJudge(Scene(truth.objects, truth.gravity), labels, config.noise, config.relation_params)
    return None


# ----------------------------------------------------------------------------------------------- decisions
def describe_preposition(judge: Judge, a: str, b: str, min_confidence: float, dominance: float
                         ) -> tuple[str, str, Outcome] | None:
    """The What's Up preposition of "the <a> is <preposition> the <b>": ``on`` when a is on top of b, ``under``
    when b is on top of a, else the one of left of / right of / in front of / behind that holds with the larger
    margin, if it exceeds the other axis' holding margin ``dominance`` times. Returns (preposition, relation,
    outcome of the deciding relation) or None when no preposition is clear (any outcome below
    ``min_confidence``, stacking undecided, or two sides too close to call)."""
    on_ab, on_ba = judge.relation("on_top_of", a, b), judge.relation("on_top_of", b, a)
    if on_ab is None or on_ba is None:
        return None
    if on_ab.holds and on_ab.confidence >= min_confidence:
        return "on", "on_top_of", on_ab
    if on_ba.holds and on_ba.confidence >= min_confidence:
        return "under", "below", on_ba
    if min(on_ab.confidence, on_ba.confidence) < min_confidence:
        return None
    sides = []
    for prep, name in DESCRIBE_SIDE:
        r = judge.relation(name, a, b)
        if r is None:
            return None
        if r.holds and r.confidence >= min_confidence:
            sides.append((r.margin_m, prep, name, r))
    if not sides:
        return None
    sides.sort(key=lambda s: s[0], reverse=True)
    if len(sides) > 1 and sides[0][0] < dominance * sides[1][0]:
        return None
    _, prep, name, r = sides[0]
    return prep, name, r


def _yes_no(o: Outcome | None) -> str:
    return "" if o is None else ("Yes" if o.holds else "No")


def _winner(o: Outcome | None, a: str, b: str) -> str:
    return "" if o is None else f"The {a if o.holds else b}"


# ----------------------------------------------------------------------------------------------- synthesis
def sample_id(source: str, frame_index: int, template: str, object_ids) -> str:
    """Stable id of a row: a hash of the source, frame index, template id and object ids."""
    key = f"{source}\x1f{frame_index}\x1f{template}\x1f{chr(31).join(object_ids)}"
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


def named_objects(scene: Scene) -> list:
    """The scene's objects whose label is unique in it (only those can be named), in scene order."""
    counts = Counter(o.label for o in scene.objects)
    return [o for o in scene.objects if o.label.strip() and counts[o.label] == 1]


class _FrameRows:
    """The rows of one frame under construction: its judges, named objects, draws and the ``add`` helper."""

    def __init__(self, lifted: LiftedFrame, config: SynthesisConfig, seed: int, objs: list):
        self.lifted, self.config, self.seed = lifted, config, int(seed)
        self.rng = np.random.default_rng(frame_seed(seed, lifted.source, lifted.frame_index))
        self.ids = {o.label: o.id for o in objs}
        self.judge = GeometryJudge(lifted.scene, {o.label: o for o in objs}, config.noise, config.relation_params)
        self.truth = truth_judge(lifted.truth, config)
        self.names = [o.label for o in objs]
        self.pairs = [(a, b) for a in self.names for b in self.names if a != b]
        self.base = {"image": {"bytes": lifted.image_png, "path": None}, "source": lifted.source,
                     "frame_index": int(lifted.frame_index), "stamp_ns": int(lifted.stamp_ns), "seed": self.seed}
        self.rows: list[dict] = []

    def add(self, kind, template, question, answer, subjects, relation="", quantity="", value=NAN, sigma=NAN,
            margin=NAN, confidence=NAN, truth_answer=""):
        obj_ids = [self.ids[s] for s in subjects]
        self.rows.append({"sample_id": sample_id(self.lifted.source, self.lifted.frame_index, template, obj_ids),
                          **self.base, "question": question, "answer": answer, "kind": kind, "template": template,
                          "relation": relation, "quantity": quantity, "value_m": float(value),
                          "sigma_m": float(sigma), "margin_m": float(margin), "confidence": float(confidence),
                          "objects": obj_ids, "labels": list(subjects), "truth_answer": truth_answer})

    def unordered(self) -> list[tuple[str, str]]:
        """Each pair of names once, in a drawn order."""
        out = []
        for i, first in enumerate(self.names):
            for second in self.names[i + 1:]:
                out.append((second, first) if self.rng.random() < 0.5 else (first, second))
        return out

    def yes_no(self) -> None:
        thr = self.config.min_confidence
        for rel in self.config.relations:
            phrase = RELATIONS[rel].phrase
            groups: dict[bool, list] = {True: [], False: []}
            for a, b in self.pairs:
                o = self.judge.relation(rel, a, b)
                if o.confidence >= thr:
                    groups[o.holds].append((a, b, o))
            if self.config.balance_yes_no:
                k = min(len(groups[True]), len(groups[False]))
                for holds in (True, False):
                    if len(groups[holds]) > k:
                        keep = np.sort(self.rng.choice(len(groups[holds]), size=k, replace=False))
                        groups[holds] = [groups[holds][i] for i in keep]
            for a, b, o in groups[True] + groups[False]:
                v = int(self.rng.integers(len(YES_NO_PHRASINGS)))
                truth = _yes_no(self.truth.relation(rel, a, b)) if self.truth else ""
                self.add("yes_no", f"relation_yes_no/{rel}/{v}", YES_NO_PHRASINGS[v].format(a=a, p=phrase, b=b),
                         _yes_no(o), (a, b), relation=rel, sigma=o.sigma_m, margin=o.margin_m,
                         confidence=o.confidence, truth_answer=truth)

    def choice(self) -> None:
        for rel in self.config.choice_relations:
            word = CHOICE_PHRASES[rel]
            for a, b in self.unordered():
                o = self.judge.relation(rel, a, b)
                if o.confidence < self.config.min_confidence:
                    continue
                v = int(self.rng.integers(len(CHOICE_PHRASINGS)))
                truth = _winner(self.truth.relation(rel, a, b), a, b) if self.truth else ""
                self.add("choice", f"choice/{rel}/{v}", CHOICE_PHRASINGS[v].format(a=a, b=b, c=word),
                         _winner(o, a, b), (a, b), relation=rel, sigma=o.sigma_m, margin=o.margin_m,
                         confidence=o.confidence, truth_answer=truth)

    def metric(self) -> None:
        for qty in self.config.quantities:
            phrasings = METRIC_PHRASINGS[qty]
            items = self.unordered() if QUANTITIES[qty].binary else [(a, None) for a in self.names]
            for a, b in items:
                value, sigma = self.judge.quantity(qty, a, b)
                if not math.isfinite(value) or abs(value) < self.config.min_metric_m:
                    continue
                v = int(self.rng.integers(len(phrasings)))
                t = self.truth.quantity(qty, a, b) if self.truth else None
                self.add("metric", f"metric/{qty}/{v}", phrasings[v].format(a=a, b=b), human_length(value),
                         (a,) if b is None else (a, b), quantity=qty, value=value, sigma=sigma,
                         confidence=metric_confidence(value, sigma), truth_answer=human_length(t[0]) if t else "")

    def describe(self) -> None:
        for a, b in self.pairs:
            decided = describe_preposition(self.judge, a, b, self.config.min_confidence,
                                           self.config.describe_dominance)
            if decided is None:
                continue
            prep, rel, o = decided
            t = describe_preposition(self.truth, a, b, 0.5, 1.0) if self.truth else None
            self.add("describe", "describe/0", DESCRIBE_PROMPT.format(a=a, b=b), caption(a, prep, b), (a, b),
                     relation=rel, sigma=o.sigma_m, margin=o.margin_m, confidence=o.confidence,
                     truth_answer=caption(a, t[0], b) if t else "")


def synthesize(lifted: LiftedFrame, config: SynthesisConfig | None = None, seed: int = 0) -> list[dict]:
    """The QA rows of one lifted frame (``schema.COLUMNS``), in the order yes/no, choice, metric, describe;
    [] for a skipped frame or one without a nameable object (one object gets its single-object questions)."""
    config = config or SynthesisConfig()
    if lifted.skipped or not lifted.scene.objects:
        return []
    objs = named_objects(lifted.scene)
    if not objs:
        return []
    frame = _FrameRows(lifted, config, seed, objs)
    for kind in KINDS:                      # a fixed order: the draws do not depend on the config's order
        if kind in config.kinds:
            getattr(frame, kind)()
    rows = frame.rows
    if config.max_per_frame and len(rows) > config.max_per_frame:
        keep = np.sort(frame.rng.choice(len(rows), size=config.max_per_frame, replace=False))
        rows = [rows[i] for i in keep]
    return rows

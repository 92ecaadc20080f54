"""Facts: the askings of one ground-truth fact merged, so that each fact is scored once.

The ground truth asks every relation over ordered pairs, so one fact is asked several ways: "A left of B"
is ``left_of(A, B)``, ``right_of(B, A)``, and negated ``left_of(B, A)``, ``right_of(A, B)``; a symmetric
quantity (``distance(A, B) == distance(B, A)``) may be asked both ways. Scoring each asking would count
one fact up to four times (and one mistake four times), so records are merged by ``fact_key``:

- a relation and its inverse are one relation (``right_of(B, A)`` is ``left_of(A, B)``), named by the first
  of the two in ``core.relations.RELATIONS`` (``left_of``, ``in_front_of``, ``closer_to_camera``, ``above``,
  ``higher_than``, ``taller_than``, ``bigger_than``, ``wider_than``);
- ``ANTISYMMETRIC`` relations (the margin is ``f(a) - f(b)``, so ``R(A, B) == not R(B, A)``) and
  ``SYMMETRIC`` ones (``next_to``) are keyed by the unordered pair; ``ORDERED`` ones (``above``, where
  both directions can be false, and ``on_top_of``) by the ordered pair; a relation unknown to the core is
  kept as ordered (never merged);
- binary quantities (all symmetric) by the unordered pair, unary ones by the subject;
- all within one frame (scene and stamp) and, where the records carry them, by ground-truth object ids.

Each asking is oriented to the fact's canonical statement (``polarity``: False for the negated askings).
A merged relation fact counts right only when EVERY asking of it was answered and right: a failed asking
fails the fact, and askings that contradict each other (``inconsistent``) make it wrong. A fact is ambiguous
when any asking is. Its confidence is the smallest confidence among its askings (the same number for every
asking of the core's relations). A quantity fact is failed when any asking failed; otherwise it takes the
asking with the largest absolute error (and that asking's uncertainty), so a disagreement is not averaged away.
Lengths are metres.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from spatial_vlm_ros.core.quantities import QUANTITIES
from spatial_vlm_ros.core.relations import RELATIONS

from .records import QUANTITY, RELATION, QueryRecord

#: relations whose margin is a difference ``f(a) - f(b)``: ``R(A, B) == not R(B, A)`` (with its inverse)
ANTISYMMETRIC = frozenset({"left_of", "right_of", "in_front_of", "behind", "closer_to_camera",
                           "farther_from_camera", "higher_than", "lower_than", "taller_than", "shorter_than",
                           "bigger_than", "smaller_than", "wider_than", "thinner_than"})
#: relations with ``R(A, B) == R(B, A)``
SYMMETRIC = frozenset({"next_to"})
#: relations of an ordered pair (both directions may be false): only the inverse is merged
ORDERED = frozenset({"above", "below", "on_top_of"})

_ORDER = {name: i for i, name in enumerate(RELATIONS)}


def canonical_asking(relation: str, subject: str, reference: str) -> tuple[str, str, str]:
    """``(relation, subject, reference)`` with an inverse relation replaced by its base and the pair swapped
    (``right_of(B, A)`` -> ``left_of(A, B)``); relations unknown to the core are returned as they are."""
    spec = RELATIONS.get(relation)
    if spec is None or not spec.inverse or _ORDER[relation] < _ORDER[spec.inverse]:
        return relation, subject, reference
    return spec.inverse, reference, subject


def _ids(r: QueryRecord) -> tuple[str, str]:
    return (r.subject_id or r.subject), (r.reference_id or r.reference)


def fact_key(r: QueryRecord) -> tuple[tuple, bool]:
    """``(key, polarity)`` of a record: records with the same key ask the same fact; ``polarity`` is False
    when the record asks its negation (its truth and answer are then flipped to the fact's)."""
    a, b = _ids(r)
    frame = (r.scene, round(float(r.frame_stamp), 6))
    if r.kind == QUANTITY:
        spec = QUANTITIES.get(r.relation_or_quantity)
        pair = tuple(sorted((a, b))) if spec is not None and spec.binary else (a, b)
        return (QUANTITY, r.relation_or_quantity, frame, pair), True
    name, a, b = canonical_asking(r.relation_or_quantity, a, b)
    if name in ANTISYMMETRIC:
        return (RELATION, name, frame, tuple(sorted((a, b)))), a <= b
    if name in SYMMETRIC:
        return (RELATION, name, frame, tuple(sorted((a, b)))), True
    return (RELATION, name, frame, (a, b)), True


@dataclass
class Fact:
    """One ground-truth fact and the merged answer of its askings (see the module docstring).

    ``truth``/``predicted`` are bools (relation, canonical orientation) or metres (quantity); ``predicted`` is
    None when the fact failed. Has the attributes scoring reads from a ``QueryRecord``."""

    kind: str
    name: str                          # canonical relation / quantity name
    truth: bool | float | None
    predicted: bool | float | None
    answered: bool
    ambiguous: bool = False
    inconsistent: bool = False         # relation askings answered but contradicting each other
    confidence: float | None = None    # relation: smallest confidence of the askings
    uncertainty: float | None = None   # quantity: one-sigma of the chosen asking, metres
    askings: list[QueryRecord] = field(default_factory=list)


def _relation_fact(name: str, group: list[tuple[QueryRecord, bool]]) -> Fact:
    truths = [bool(r.truth) == pol for r, pol in group if r.truth is not None]
    answered = all(r.answered for r, _ in group)
    preds = {bool(r.predicted) == pol for r, pol in group if r.answered}
    confs = [r.confidence for r, _ in group if r.answered]
    fact = Fact(RELATION, name, truths[0] if truths else None, None, answered,
                ambiguous=any(r.ambiguous for r, _ in group), askings=[r for r, _ in group],
                confidence=min(confs) if confs and all(c is not None for c in confs) else None)
    if not answered:
        return fact
    fact.inconsistent = len(preds) > 1
    if fact.inconsistent:
        fact.predicted = not fact.truth if fact.truth is not None else None   # wrong, whatever the truth
    else:
        fact.predicted = next(iter(preds))
    return fact


def _quantity_fact(name: str, group: list[tuple[QueryRecord, bool]]) -> Fact:
    records = [r for r, _ in group]
    truth = next((float(r.truth) for r in records if r.truth is not None), None)
    fact = Fact(QUANTITY, name, truth, None, all(r.answered for r in records),
                ambiguous=any(r.ambiguous for r in records), askings=records)
    if not fact.answered or truth is None:
        return fact
    worst = max(records, key=lambda r: abs(float(r.predicted) - truth)
                if math.isfinite(float(r.predicted)) else math.inf)
    fact.predicted, fact.uncertainty = float(worst.predicted), worst.uncertainty
    return fact


def merge_facts(records: Iterable[QueryRecord]) -> list[Fact]:
    """The facts of ``records`` in first-asked order, each with all its askings merged."""
    groups: dict[tuple, list[tuple[QueryRecord, bool]]] = defaultdict(list)
    for r in records:
        key, polarity = fact_key(r)
        groups[key].append((r, polarity))
    out = []
    for key, group in groups.items():
        kind, name = key[0], key[1]
        out.append(_relation_fact(name, group) if kind == RELATION else _quantity_fact(name, group))
    return out

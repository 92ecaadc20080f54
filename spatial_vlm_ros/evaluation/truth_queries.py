"""From ground-truth frames (docs/ground_truth_format.md) to the queries to ask and their records.

The ground-truth file holds, per frame stamp, the objects (ids, labels, boxes, ``visible``/``in_view``), every
relation over ordered pairs (``holds``, ``ambiguous``) and every quantity (``value_m``). Here each becomes a
``QueryRecord`` with its truth, naming the objects as a planner would (their label, or an id given by a
matching of the node's objects), and frames are grouped into the frame sets the runner replays before asking.
Lengths are metres, stamps seconds (``frame_stamp``) or integer nanoseconds (ground-truth keys).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .records import QUANTITY, RELATION, QueryRecord


@dataclass
class FrameSet:
    """Consecutive ground-truth frames of one scene; the runner replays up to ``last`` and asks about it."""

    scene: str
    stamps_ns: list[int] = field(default_factory=list)

    @property
    def last(self) -> int:
        return self.stamps_ns[-1]


def frame_sets(frames: dict[int, dict]) -> list[FrameSet]:
    """Group stamp-ordered frames by ``scene_id``; frames without one each form their own set."""
    sets: list[FrameSet] = []
    for stamp in sorted(frames):
        scene = frames[stamp].get("scene_id")
        if scene is not None and sets and sets[-1].scene == scene:
            sets[-1].stamps_ns.append(stamp)
        else:
            sets.append(FrameSet(scene if scene is not None else f"frame_{stamp}", [stamp]))
    return sets


def askable_objects(frame: dict, min_visible_pixels: int = 0) -> dict[str, dict]:
    """Objects a camera could answer about: ``visible`` and ``in_view`` (absent flags count as true)."""
    out = {}
    for e in frame.get("objects", []):
        if not e.get("visible", True) or not e.get("in_view", True):
            continue
        if int(e.get("visible_pixels", min_visible_pixels)) < min_visible_pixels:
            continue
        out[e["id"]] = e
    return out


def label_names(objects: dict[str, dict]) -> dict[str, str]:
    """GT id -> label for objects whose label is unique among ``objects`` (a planner's name for them)."""
    counts = Counter(e["label"] for e in objects.values())
    return {oid: e["label"] for oid, e in objects.items() if counts[e["label"]] == 1}


def _range(obj: dict) -> float:
    c = obj.get("center")
    return float(np.linalg.norm(c)) if c is not None else float("nan")


#: message of the records about an object the node did not find (see ``frame_queries(missed=...)``)
NOT_FOUND = "object not found by the detector"


def frame_queries(frame: dict, names: dict[str, str], detector: str = "external",
                  relations: set[str] | None = None, quantities: set[str] | None = None,
                  missed: str | None = None) -> tuple[list[QueryRecord], Counter]:
    """Unanswered records for every relation and quantity of ``frame`` whose objects are all visible.

    ``names`` maps GT object ids to the names sent to the node. A visible object without a name is skipped
    (counted in the returned reasons) when ``missed`` is None; otherwise the record is kept, already failed
    with the message ``missed`` (e.g. ``NOT_FOUND``) and the unnamed GT ids in ``QueryRecord.missed``, so a
    question about an object the node did not find counts as wrong instead of vanishing from the score.
    Returns the records and a count of the entries skipped, by reason ("object not visible", "object not
    named").
    """
    stamp = int(frame["stamp_ns"]) * 1e-9
    scene = str(frame.get("scene_id", ""))
    objects = {e["id"]: e for e in frame.get("objects", [])}
    visible = askable_objects(frame)
    skipped: Counter = Counter()
    records: list[QueryRecord] = []

    def usable(*ids) -> bool:
        for oid in ids:
            if oid is None:
                continue
            if oid not in visible:
                skipped["object not visible"] += 1
                return False
            if oid not in names and missed is None:
                skipped["object not named (duplicate label or unmatched)"] += 1
                return False
        return True

    def name(oid) -> str:
        return names.get(oid, oid) if oid else ""

    def mark_missed(record: QueryRecord) -> QueryRecord:
        gone = [oid for oid in (record.subject_id, record.reference_id) if oid and oid not in names]
        if gone:
            record.missed = ",".join(gone)
            record.success, record.predicted, record.message = False, None, f"{missed}: {', '.join(gone)}"
        return record

    for r in frame.get("relations", []):
        if relations is not None and r["relation"] not in relations:
            continue
        if not usable(r["subject"], r["reference"]):
            continue
        records.append(mark_missed(QueryRecord(
            stamp, RELATION, name(r["subject"]), r["relation"], name(r["reference"]), truth=bool(r["holds"]),
            ambiguous=bool(r.get("ambiguous", False)), scene=scene, subject_range_m=_range(objects[r["subject"]]),
            subject_id=r["subject"], reference_id=r["reference"], detector=detector)))
    for q in frame.get("quantities", []):
        if quantities is not None and q["quantity"] not in quantities:
            continue
        ref = q.get("reference")
        if not usable(q["subject"], ref):
            continue
        records.append(mark_missed(QueryRecord(
            stamp, QUANTITY, name(q["subject"]), q["quantity"], name(ref), truth=float(q["value_m"]),
            ambiguous=bool(q.get("ambiguous", False)), scene=scene, subject_range_m=_range(objects[q["subject"]]),
            subject_id=q["subject"], reference_id=ref or "", detector=detector)))
    return records, skipped


def failed_records(records: list[QueryRecord], message: str) -> list[QueryRecord]:
    """Mark records as unanswered with ``message`` (e.g. the frame was never processed)."""
    for r in records:
        r.success, r.predicted, r.message = False, None, message
    return records


def askable_records(records: list[QueryRecord]) -> list[QueryRecord]:
    """The records to send to the node: those about objects it found (``missed`` empty)."""
    return [r for r in records if not r.missed]


def detection_counts(present: int, found: int, reported: int) -> dict:
    """Detector recall and precision of one run from object counts summed over the scored frames.

    ``present``: ground-truth objects visible in them; ``found``: those matched one-to-one by a node object;
    ``reported``: objects the node published for them (so ``reported - found`` are false or duplicate
    objects). Recall = found / present, precision = found / reported (NaN when a count is 0)."""
    nan = float("nan")
    return {"present": int(present), "found": int(found), "reported": int(reported),
            "missed": int(present - found), "false_positives": int(reported - found),
            "recall": found / present if present else nan, "precision": found / reported if reported else nan}

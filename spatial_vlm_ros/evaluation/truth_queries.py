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


@dataclass
class _FrameNaming:
    """One frame's objects and the names the questions use for them; counts what it cannot ask."""

    stamp: float                                # s
    scene: str
    objects: dict[str, dict]                    # every GT object of the frame
    visible: dict[str, dict]                    # ``askable_objects``
    names: dict[str, str]
    missed: str | None
    detector: str
    skipped: Counter = field(default_factory=Counter)

    @classmethod
    def of(cls, frame: dict, names: dict[str, str], detector: str, missed: str | None) -> _FrameNaming:
        return cls(int(frame["stamp_ns"]) * 1e-9, str(frame.get("scene_id", "")),
                   {e["id"]: e for e in frame.get("objects", [])}, askable_objects(frame), names, missed, detector)

    def usable(self, *ids) -> bool:
        """Whether every given object (None: no reference) can be asked about; counts the reason if not."""
        for oid in ids:
            if oid is None:
                continue
            if oid not in self.visible:
                self.skipped["object not visible"] += 1
                return False
            if oid not in self.names and self.missed is None:
                self.skipped["object not named (duplicate label or unmatched)"] += 1
                return False
        return True

    def name(self, oid) -> str:
        return self.names.get(oid, oid) if oid else ""

    def mark_missed(self, record: QueryRecord) -> QueryRecord:
        """Fail ``record`` with ``missed`` when an object it names was not found (has no name)."""
        gone = [oid for oid in (record.subject_id, record.reference_id) if oid and oid not in self.names]
        if gone:
            record.missed = ",".join(gone)
            record.success, record.predicted, record.message = False, None, f"{self.missed}: {', '.join(gone)}"
        return record

    def relation_record(self, r: dict) -> QueryRecord:
        return self.mark_missed(QueryRecord(
            self.stamp, RELATION, self.name(r["subject"]), r["relation"], self.name(r["reference"]),
            truth=bool(r["holds"]), ambiguous=bool(r.get("ambiguous", False)), scene=self.scene,
            subject_range_m=_range(self.objects[r["subject"]]), subject_id=r["subject"],
            reference_id=r["reference"], detector=self.detector))

    def quantity_record(self, q: dict) -> QueryRecord:
        ref = q.get("reference")
        return self.mark_missed(QueryRecord(
            self.stamp, QUANTITY, self.name(q["subject"]), q["quantity"], self.name(ref),
            truth=float(q["value_m"]), ambiguous=bool(q.get("ambiguous", False)), scene=self.scene,
            subject_range_m=_range(self.objects[q["subject"]]), subject_id=q["subject"], reference_id=ref or "",
            detector=self.detector))


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
    naming = _FrameNaming.of(frame, names, detector, missed)
    records = [naming.relation_record(r) for r in frame.get("relations", [])
               if (relations is None or r["relation"] in relations) and naming.usable(r["subject"], r["reference"])]
    records += [naming.quantity_record(q) for q in frame.get("quantities", [])
                if (quantities is None or q["quantity"] in quantities)
                and naming.usable(q["subject"], q.get("reference"))]
    return records, naming.skipped


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

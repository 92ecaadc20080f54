"""Normalised evaluation records: one ground-truth query, the package's answer to it, and per-run frame counts.

These dataclasses are the only thing scoring and reporting read, so they do not depend on the ground-truth
file's layout or on the service types. Lengths are metres, times milliseconds, stamps seconds.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

RELATION = "relation"
QUANTITY = "quantity"


@dataclass
class QueryRecord:
    """One ground-truth question about a frame and what the package answered.

    ``kind`` is ``"relation"`` (``truth``/``predicted`` are bools: does the relation hold) or ``"quantity"``
    (``truth``/``predicted`` are metres). ``predicted`` is None when the service failed (``success`` False)
    or was not called; ``missed`` names the ground-truth objects of the question the node did not find (the
    question is then not asked and counts as wrong, never skipped). ``ambiguous`` marks ground-truth pairs
    within the definition's margin: they are reported but excluded from accuracy.
    """

    frame_stamp: float                      # seconds, header stamp of the frame the truth belongs to
    kind: str                               # "relation" | "quantity"
    subject: str                            # name sent to the service (label, id or "color label")
    relation_or_quantity: str               # canonical name, e.g. "left_of", "distance"
    reference: str = ""                     # second object's name, "" for unary quantities
    truth: bool | float | None = None
    ambiguous: bool = False
    predicted: bool | float | None = None
    success: bool = False                   # the service answered (success=True in its response)
    message: str = ""                       # the service's message (error text when success is False)
    latency_ms: float = float("nan")        # service round trip, milliseconds
    confidence: float | None = None         # relation confidence in [0.5, 1] (or [0, 1]) from the service
    uncertainty: float | None = None        # quantity one-sigma uncertainty from the service, metres
    answer: str = ""                        # the service's natural-language sentence
    scene: str = ""                         # scene / frame-set id, if the ground truth has one
    subject_range_m: float = float("nan")   # true distance camera -> subject center (for error-vs-range plots)
    subject_id: str = ""                    # ground-truth object id of the subject (not sent to the node)
    reference_id: str = ""                  # ground-truth object id of the reference
    detector: str = "external"              # detector the node ran with
    missed: str = ""                        # GT ids (comma-separated) the detector did not find: not asked,
                                            # counted as a wrong / unsuccessful answer

    @property
    def name(self) -> str:
        return self.relation_or_quantity

    @property
    def answered(self) -> bool:
        return self.success and self.predicted is not None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> QueryRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class FrameStats:
    """Frame accounting of one run: what was replayed and what the node processed.

    ``dropped`` counts frame sets published but never seen processed (no ``~/objects`` message with their
    stamp), which covers frames the node's synchroniser dropped as stale or incomplete.
    """

    published: int = 0                      # frame sets (color stamps) the player published
    processed: int = 0                      # distinct stamps the node reported on ~/objects
    node_dropped: int | None = None         # the node's own dropped-frame count (diagnostics), if known
    processed_stamps: list[float] = field(default_factory=list)
    frame_latency_ms: list[float] = field(default_factory=list)   # publish -> ~/objects, milliseconds

    @property
    def dropped(self) -> int:
        return max(self.published - self.processed, 0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dropped"] = self.dropped
        return d


def relation_records(records: Iterable[QueryRecord]) -> list[QueryRecord]:
    return [r for r in records if r.kind == RELATION]


def quantity_records(records: Iterable[QueryRecord]) -> list[QueryRecord]:
    return [r for r in records if r.kind == QUANTITY]

"""Who answers a template question on ``~/ask``: the geometry, the VLM, or both side by side.

The ``Ask`` request's ``engine`` (``spatial_vlm_interfaces/srv/Ask.srv``):

- ``geometry`` (or ""): the measured geometry answers (``core.spatial_queries``), as without an engine;
- ``vlm``: the VLM answers, its prompt grounded in the scene facts (:func:`grounding_context`); its text is
  read as the template's kind (:mod:`.answer_parsing`) into ``yes``/``value``. A text that cannot be read
  is still a successful answer: ``vlm_parsed`` is false, ``answer`` holds the text and ``message`` says so;
- ``both``: the geometry's answer unchanged in the main fields, the VLM's in the ``vlm_*`` fields.

A question no template matches goes to the VLM whatever the engine (the perception node forwards it). The
functions here return response fields as dicts keyed by the ``Ask`` response's field names, so that the
choice is testable without ROS.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.questions import parse
from spatial_vlm_ros.vlm.answer_parsing import Reading, read_answer
from spatial_vlm_ros.vlm.grounding import scene_facts

ENGINES = ("geometry", "vlm", "both")

#: query kind (``core.questions.KINDS``) -> the ``kind`` of its ``Ask`` answer
ANSWER_KINDS = {"relation": "yes_no", "exists": "yes_no", "quantity": "metric", "choice": "choice",
                "list": "free", "locate": "free", "dimensions": "free",
                "find": "list", "placement": "yes_no", "threshold": "yes_no"}

#: objects listed in the grounding context (nearest first); more than the VLM node's default, since the
#: question may name any object of the scene
CONTEXT_OBJECTS = 16

_READ_AS = {"yes_no": "yes or no", "metric": "a length"}


def canonical_engine(engine: str) -> str:
    """``engine`` as one of ``ENGINES`` ("" is ``geometry``; case and spaces ignored), else ``InputError``."""
    name = str(engine).strip().lower() or "geometry"
    if name not in ENGINES:
        raise InputError(f"unknown engine '{str(engine).strip()}'; use one of {', '.join(ENGINES)}")
    return name


def template_kind(question: str) -> str:
    """The answer kind of a template question; raises the parser's ``QueryError`` (``UnrecognisedQuestion``
    when no template matches)."""
    return ANSWER_KINDS[parse(question).kind]


def grounding_context(scene) -> str:
    """The scene facts sent with a template question to the VLM (``grounding.scene_facts``); "" when empty."""
    return scene_facts(scene, max_objects=CONTEXT_OBJECTS)


@dataclass(frozen=True)
class VLMReply:
    """The VLM's reply to a template question, read as the template's ``kind``."""

    kind: str
    success: bool
    message: str
    answer: str = ""                       # the VLM's text
    confidence: float = 0.0                # geometric mean of the token probabilities
    reading: Reading = field(default_factory=lambda: Reading(False))

    @classmethod
    def read(cls, kind: str, response) -> VLMReply:
        """From a successful ``Ask`` response of the VLM node (``answer``, ``message``, ``confidence``)."""
        return cls(kind, True, str(response.message), str(response.answer), float(response.confidence),
                   read_answer(kind, str(response.answer)))

    @classmethod
    def failed(cls, kind: str, reason: str) -> VLMReply:
        return cls(kind, False, reason)

    def fields(self) -> dict:
        """The ``vlm_*`` response fields."""
        r = self.reading
        return {"vlm_success": self.success, "vlm_message": self.message, "vlm_answer": self.answer,
                "vlm_parsed": r.parsed, "vlm_yes": r.yes, "vlm_value": r.value, "vlm_confidence": self.confidence}

    def main_fields(self) -> dict:
        """The main response fields when the VLM is the engine."""
        message = self.message
        if self.success and not self.reading.parsed and self.kind in _READ_AS:
            message += f"; the VLM's answer could not be read as {_READ_AS[self.kind]} (vlm_parsed false)"
        return {"success": self.success, "message": message, "answer": self.answer, "kind": self.kind,
                "yes": self.reading.yes, "value": self.reading.value, "confidence": self.confidence}


def engine_fields(engine: str, geometry: dict | None, reply: VLMReply) -> dict:
    """The response fields of a template question asked with ``engine`` ``vlm`` or ``both``: ``geometry``
    (the geometry's main fields; needed for ``both``) and the VLM's ``reply``."""
    if engine == "vlm":
        return {**reply.main_fields(), **reply.fields()}
    if engine == "both":
        if geometry is None:
            raise ValueError("engine 'both' needs the geometry's answer")
        return {**geometry, **reply.fields()}
    raise ValueError(f"engine_fields is for engines vlm and both, not {engine!r}")

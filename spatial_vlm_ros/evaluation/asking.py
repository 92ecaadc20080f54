"""Ask the node the evaluation's questions and read its answers into ``QueryRecord``s.

Who a question names (``question_names``: a unique ground-truth label or the matched node id), how each record
is asked (through ``~/get_relation`` / ``~/measure``, or for engine ``vlm`` as its template question through
``~/ask``), and how a response fills the record. Lengths in metres, latencies in milliseconds.
"""
from __future__ import annotations

from spatial_vlm_ros.core.relations import RELATIONS

from .config import GT_LABELLED
from .records import RELATION, QueryRecord
from .scene_query_truth import SceneQueryRecord, fill_find, fill_placement, scene_queries
from .truth_queries import label_names

#: quantity -> its template question (``core.questions.parse`` reads each back to the quantity)
QUANTITY_QUESTIONS = {
    "distance": "How far is the {a} from the {b}?", "gap": "What is the gap between the {a} and the {b}?",
    "horizontal_distance": "What is the horizontal distance between the {a} and the {b}?",
    "vertical_distance": "What is the vertical distance between the {a} and the {b}?",
    "width": "How wide is the {a}?", "depth": "How deep is the {a}?", "height": "How tall is the {a}?",
    "distance_to_camera": "How far is the {a} from the camera?"}


def question_names(detector: str, visible: dict[str, dict], matches) -> dict[str, str]:
    """GT id -> the name the questions use. With ground-truth labels (``external``, ``boxes``) an object
    whose label is unique among the visible ones is asked about by that label, as a planner would; other
    objects (duplicate labels, or every object for ``tabletop``) by the id of the node object matched to it.
    An object in neither is one the node did not find."""
    names = label_names(visible) if detector in GT_LABELLED else {}
    for m in matches:
        names.setdefault(m.gt_id, m.node_id)
    return names


def fill_service_answer(record: QueryRecord, response, latency_ms: float) -> None:
    """A record from a ``GetRelation`` / ``Measure`` response (None: the call timed out)."""
    record.latency_ms = latency_ms
    if response is None:
        record.success, record.message = False, "service call timed out"
        return
    record.success, record.message = bool(response.success), str(response.message)
    record.answer = str(response.answer)
    if not record.success:
        record.predicted = None
    elif record.kind == "relation":
        record.predicted, record.confidence = bool(response.holds), float(response.confidence)
    else:
        record.predicted, record.uncertainty = float(response.value), float(response.uncertainty)


def fill_vlm_answer(record: QueryRecord, response, latency_ms: float) -> None:
    """A record from an ``Ask`` response with ``engine: vlm``: an answer that was not read counts as wrong."""
    record.latency_ms = latency_ms
    if response is None:
        record.success, record.message = False, "service call timed out"
        return
    record.success, record.message, record.answer = bool(response.success), str(response.message), \
        str(response.answer)
    if not (record.success and response.vlm_parsed):
        record.predicted = None
    else:
        record.predicted = bool(response.yes) if record.kind == RELATION else float(response.value)


def relation_question(subject: str, relation: str, reference: str) -> str:
    """"Is the A to the left of the B?": a relation's yes/no question as ``~/ask`` parses it."""
    return f"Is the {subject} {RELATIONS[relation].phrase} the {reference}?"


def template_question(record: QueryRecord) -> str:
    """The record's question as ``~/ask`` parses it: ``relation_question``, or "How far is the A from the B?"
    (``QUANTITY_QUESTIONS``)."""
    if record.kind == RELATION:
        return relation_question(record.subject, record.relation_or_quantity, record.reference)
    return QUANTITY_QUESTIONS[record.relation_or_quantity].format(a=record.subject, b=record.reference)


def ask_records(client, records: list[QueryRecord], timeout_s: float, engine: str = "geometry") -> None:
    """Ask each record's question and fill in the answers: through ``~/get_relation`` / ``~/measure``
    (``geometry``), or as its template question through ``~/ask`` with ``engine: vlm``."""
    for r in records:
        if engine == "vlm":
            resp, ms = client.ask(template_question(r), timeout_s, engine="vlm")
            fill_vlm_answer(r, resp, ms)
        elif r.kind == "relation":
            resp, ms = client.get_relation(r.subject, r.relation_or_quantity, r.reference, timeout_s)
            fill_service_answer(r, resp, ms)
        else:
            resp, ms = client.measure(r.relation_or_quantity, r.subject, r.reference, timeout_s)
            fill_service_answer(r, resp, ms)


def ask_scene_queries(client, gt_frame: dict, visible: dict[str, dict], names: dict[str, str],
                      timeout_s: float) -> list[SceneQueryRecord]:
    """Ask the frame's ``~/find`` and ``~/check_placement`` queries (``scene_query_truth``) and score them; a
    query naming an object the node did not find is not asked and counts as wrong."""
    records = scene_queries(gt_frame, visible, names)
    for r in records:
        if r.missed:
            continue
        if r.kind == "find":
            response, ms = client.find(timeout_s=timeout_s, **r.request)
            fill_find(r, response, ms, gt_frame, visible)
        else:
            req = r.request
            response, ms = client.check_placement(req["size"], req["location"], req["references"],
                                                  timeout_s=timeout_s)
            fill_placement(r, response, ms, gt_frame)
    return records

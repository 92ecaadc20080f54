"""The ~/ask engine choice without ROS: engine names, template kinds, and how the VLM's reply fills the fields."""
from types import SimpleNamespace

import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError, QueryError
from spatial_vlm_ros.core.questions import UnrecognisedQuestion
from spatial_vlm_ros.vlm.ask_engines import (
    ENGINES,
    VLMReply,
    canonical_engine,
    engine_fields,
    grounding_context,
    template_kind,
)

GEOMETRY = {"success": True, "message": "mug_1 is left of bowl_1: margin +0.2 m", "answer": "Yes, the mug is "
            "to the left of the bowl.", "kind": "yes_no", "yes": True, "value": 0.0, "confidence": 0.99}
VLM_FIELDS = ("vlm_success", "vlm_message", "vlm_answer", "vlm_parsed", "vlm_yes", "vlm_value", "vlm_confidence")


def _reply(kind, text, confidence=0.25):
    return VLMReply.read(kind, SimpleNamespace(answer=text, message="answered by tiny (transformers)",
                                               confidence=confidence))


@pytest.mark.parametrize("given, name", [("", "geometry"), ("geometry", "geometry"), (" VLM ", "vlm"),
                                         ("Both", "both")])
def test_engine_names(given, name):
    assert canonical_engine(given) == name and name in ENGINES


def test_an_unknown_engine_is_refused_naming_the_known_ones():
    with pytest.raises(InputError, match=r"unknown engine 'llm'; use one of geometry, vlm, both"):
        canonical_engine("llm")


@pytest.mark.parametrize("question, kind", [
    ("Is the mug to the left of the bowl?", "yes_no"), ("Do you see a mug?", "yes_no"),
    ("How far is the mug from the bowl?", "metric"), ("How tall is the mug?", "metric"),
    ("Which is taller, the mug or the bowl?", "choice"), ("Where is the mug?", "free"),
    ("What objects do you see?", "free")])
def test_template_kind_is_the_kind_the_geometry_answers_with(question, kind):
    assert template_kind(question) == kind


def test_template_kind_raises_the_parser_errors():
    with pytest.raises(UnrecognisedQuestion):
        template_kind("Which object could I stack on the box, and why?")
    with pytest.raises(QueryError):
        template_kind("   ")


def test_engine_vlm_puts_the_read_answer_in_the_main_and_the_vlm_fields():
    fields = engine_fields("vlm", GEOMETRY, _reply("yes_no", "No, it is on the right."))
    assert fields["success"] and fields["kind"] == "yes_no" and fields["yes"] is False
    assert fields["answer"] == fields["vlm_answer"] == "No, it is on the right."
    assert fields["confidence"] == fields["vlm_confidence"] == 0.25 and fields["vlm_parsed"]
    metric = engine_fields("vlm", None, _reply("metric", "About 30 cm."))
    assert metric["kind"] == "metric" and metric["value"] == pytest.approx(0.3) == metric["vlm_value"]


def test_an_unreadable_vlm_answer_is_a_success_with_the_text_and_vlm_parsed_false():
    fields = engine_fields("vlm", None, _reply("metric", "qz#@ 7 mugs"))
    assert fields["success"] and fields["kind"] == "metric" and not fields["vlm_parsed"]
    assert fields["answer"] == "qz#@ 7 mugs" and fields["value"] == 0.0
    assert "could not be read as a length" in fields["message"]
    free = engine_fields("vlm", None, _reply("free", "A mug and a bowl."))     # nothing to read: no note
    assert free["success"] and not free["vlm_parsed"] and "could not be read" not in free["message"]


def test_engine_both_keeps_the_geometry_answer_unchanged_and_adds_the_vlm():
    fields = engine_fields("both", GEOMETRY, _reply("yes_no", "no"))
    assert {k: fields[k] for k in GEOMETRY} == GEOMETRY
    assert fields["vlm_parsed"] and fields["vlm_yes"] is False and fields["vlm_answer"] == "no"
    assert set(fields) == set(GEOMETRY) | set(VLM_FIELDS)


def test_a_vlm_that_did_not_answer_fails_engine_vlm_but_not_engine_both():
    reply = VLMReply.failed("yes_no", "VLM unavailable: no server on /spatial_vlm/ask")
    vlm = engine_fields("vlm", GEOMETRY, reply)
    assert not vlm["success"] and not vlm["vlm_success"] and "no server" in vlm["message"]
    both = engine_fields("both", GEOMETRY, reply)
    assert both["success"] and both["answer"] == GEOMETRY["answer"]
    assert not both["vlm_success"] and "no server" in both["vlm_message"] and both["vlm_answer"] == ""


def test_engine_fields_is_only_for_the_vlm_engines():
    with pytest.raises(ValueError):
        engine_fields("geometry", GEOMETRY, _reply("yes_no", "yes"))
    with pytest.raises(ValueError):
        engine_fields("both", None, _reply("yes_no", "yes"))


def test_grounding_context_lists_every_object_up_to_the_limit():
    objects = [SimpleNamespace(id=f"mug_{k}", label="mug", center=np.array([0.1 * k, 0.0, 1.0]),
                               size=np.array([0.08, 0.08, 0.1])) for k in range(10)]
    text = grounding_context(objects)
    assert all(f"mug_{k} " in text for k in range(10))         # above the VLM node's default of 8
    assert grounding_context([]) == ""

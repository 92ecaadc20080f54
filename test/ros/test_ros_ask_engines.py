"""Integration: ``~/ask`` with ``engine`` vlm / both, through the real perception and VLM nodes.

The perception node (in-process) answers from analytic RGB-D frames; the real ``vlm_node`` serves a tiny
random LLaVA (its text is meaningless: the tests check the plumbing, never what it says). The VLM's answer
must be the one the same model gives to the same image with the perception node's scene facts as context.

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/ros/test_ros_ask_engines.py``.
"""
import os
import threading

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
pytest.importorskip("transformers")

import rclpy  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_harness import NodeHarness, default_scene, frame_messages, wait_until  # noqa: E402

from spatial_vlm_interfaces.srv import Ask  # noqa: E402
from spatial_vlm_ros.ros.vlm_node import SpatialVLMNode  # noqa: E402
from spatial_vlm_ros.vlm.ask_engines import grounding_context  # noqa: E402
from spatial_vlm_ros.vlm.engine import VLMRequest  # noqa: E402

SCENE = default_scene()
RELATION = "Is the mug to the left of the box?"
DISTANCE = "How far apart are the box and the mug?"
GEOMETRY_FIELDS = ("success", "message", "answer", "kind", "yes", "value", "confidence")
VLM_FIELDS = ("vlm_success", "vlm_message", "vlm_answer", "vlm_parsed", "vlm_yes", "vlm_value", "vlm_confidence")


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    from spatial_vlm_ros.vlm.tiny_models import save_tiny_model
    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    path = save_tiny_model(tmp_path_factory.mktemp("tiny_llava"), "llava", seed=0)
    return path, TransformersEngine(str(path))


@pytest.fixture(scope="module")
def nodes(tiny_llava):
    """(perception harness, VLM node): the VLM node on the camera's color topic, both with frames."""
    if not rclpy.ok():
        rclpy.init()
    vlm = SpatialVLMNode(namespace="engines", parameter_overrides=[
        Parameter("model", value=str(tiny_llava[0])), Parameter("max_new_tokens", value=6)])
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(vlm)
    thread = threading.Thread(target=executor.spin, name="vlm-node", daemon=False)
    thread.start()
    h = NodeHarness({"memory.timeout_s": 600.0, "vlm_service": "/engines/spatial_vlm/ask", "vlm_timeout_s": 60.0},
                    namespace="engines").__enter__()
    try:
        assert vlm.worker.wait_loaded(60.0) and vlm.worker.state == "ready"
        assert wait_until(h.node.vlm.client.service_is_ready, 10.0), "the VLM node was not discovered"
        stamps = iter(100.0 + 0.1 * k for k in range(1000))
        assert h.publish_until_processed(lambda: frame_messages(SCENE, next(stamps))), "no frame processed"
        assert wait_until(lambda: vlm._image is not None or h.publish(frame_messages(SCENE, next(stamps))), 10.0), \
            "the VLM node received no image"
        yield h, vlm
    finally:
        h.__exit__(None, None, None)
        executor.shutdown()
        thread.join(10.0)
        vlm.destroy_node()


def _ask(h, question, engine, timeout=60.0):
    return h.call(Ask, "ask", timeout, question=question, engine=engine)


def _expected_text(tiny_llava, h, vlm, question) -> str:
    """What the same model answers to the scene's image with the perception node's facts (greedy)."""
    facts = grounding_context(h.node.mirror.snapshot())
    assert "mug_1" in facts and "box_1" in facts
    return tiny_llava[1].answer(VLMRequest(question, SCENE.rgb, facts=facts), vlm.options).text


def test_engine_vlm_answers_a_template_question_from_the_grounded_vlm(nodes, tiny_llava):
    h, vlm = nodes
    res = _ask(h, RELATION, "vlm")
    assert res.success and res.vlm_success, res.message
    assert res.kind == "yes_no" and res.answer == res.vlm_answer == _expected_text(tiny_llava, h, vlm, RELATION)
    assert res.message.startswith("answered by") and 0.0 < res.confidence == pytest.approx(res.vlm_confidence)
    if res.vlm_parsed:
        assert res.yes == res.vlm_yes
    else:                                   # the tiny model's text: the raw text, said so, no yes read
        assert "could not be read as yes or no" in res.message and not res.yes
    metric = _ask(h, DISTANCE, "vlm")
    assert metric.success and metric.kind == "metric" and metric.answer == metric.vlm_answer
    assert metric.value == metric.vlm_value and (metric.vlm_parsed or metric.value == 0.0)


def test_engine_both_keeps_the_geometry_answer_and_adds_the_vlm(nodes, tiny_llava):
    h, vlm = nodes
    for question in (RELATION, DISTANCE):
        geometry = _ask(h, question, "")
        both = _ask(h, question, "both")
        assert geometry.success and not geometry.vlm_success and geometry.vlm_answer == ""
        assert {f: getattr(both, f) for f in GEOMETRY_FIELDS} == {f: getattr(geometry, f) for f in GEOMETRY_FIELDS}
        assert both.vlm_success and both.vlm_answer == _expected_text(tiny_llava, h, vlm, question)
        assert both.vlm_answer != both.answer


def test_an_unknown_engine_is_refused(nodes):
    h, _ = nodes
    res = _ask(h, RELATION, "oracle")
    assert not res.success and "unknown engine 'oracle'" in res.message and "geometry, vlm, both" in res.message


def test_without_a_vlm_engine_vlm_fails_clearly_and_both_still_answers_from_geometry(nodes):
    h = NodeHarness({"vlm_service": "/nobody/ask"}, namespace="engines_novlm").__enter__()
    try:
        stamps = iter(200.0 + 0.1 * k for k in range(1000))
        assert h.publish_until_processed(lambda: frame_messages(SCENE, next(stamps)))
        vlm = _ask(h, RELATION, "vlm", timeout=10.0)
        assert not vlm.success and not vlm.vlm_success
        assert "VLM unavailable: no server on /nobody/ask" in vlm.message
        both = _ask(h, RELATION, "both", timeout=10.0)
        geometry = _ask(h, RELATION, "geometry", timeout=10.0)
        assert both.success and both.kind == "yes_no" and both.answer == geometry.answer and both.yes == geometry.yes
        assert not both.vlm_success and "no server on /nobody/ask" in both.vlm_message
        assert _ask(h, DISTANCE, "", timeout=10.0).success              # the node is alive and answering
    finally:
        h.__exit__(None, None, None)


def test_a_free_form_question_goes_to_the_vlm_whatever_the_engine(nodes):
    h, _ = nodes
    for engine in ("", "vlm", "both"):
        res = _ask(h, "Which object could I stack on the box, and why?", engine)
        assert res.success and res.kind in ("free", "yes_no") and res.message.startswith("answered by")
        assert not res.vlm_success and res.vlm_answer == ""         # returned as the VLM node sent it

"""Integration: the perception node's ~/ask forwards questions no template matches to the VLM's Ask service.

The real perception node (in-process, MultiThreadedExecutor) answers template questions from analytic RGB-D
frames; the VLM side is a minimal rclpy Ask server in its own executor (records what it gets, answers with
fixed fields, can be held back) and, for the refusal path, the real ``vlm_node`` without a model.

Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/ros/test_ros_vlm_forwarding.py``.
"""
import threading

import numpy as np
import pytest
import rclpy
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from ros_harness import NodeHarness, default_scene, frame_messages, wait_until

from spatial_vlm_interfaces.srv import Ask
from spatial_vlm_ros.ros.vlm_forwarding import MAX_WAITING
from spatial_vlm_ros.ros.vlm_node import SpatialVLMNode

SCENE = default_scene()
TRUTH = {t.label: t for t in SCENE.objects}
FAKE_SERVICE = "/fake_vlm/ask"
FREE_FORM = "  Which object could I stack on the BOX, and why?  "     # no template matches it
REPLY = dict(success=True, message="answered by the fake VLM", answer="The book, it is flat.", kind="free",
             yes=False, value=1.25, confidence=0.375)


class FakeVLM:
    """An Ask server in its own executor thread: records each question and, once ``gate`` is set, answers
    with ``REPLY``. Clear ``gate`` to hold answers back."""

    def __init__(self, service: str = FAKE_SERVICE):
        self.node = Node("fake_vlm_" + service.strip("/").replace("/", "_"))
        self.questions: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.node.create_service(Ask, service, self._ask, callback_group=ReentrantCallbackGroup())
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, name="fake-vlm", daemon=False)
        self.thread.start()

    def _ask(self, request, response):
        self.questions.append(request.question)
        self.gate.wait(30.0)
        for name, value in REPLY.items():
            setattr(response, name, value)
        return response

    def close(self):
        self.gate.set()
        self.executor.shutdown()
        self.thread.join(10.0)
        self.node.destroy_node()


def _harness(namespace: str, frames: bool = False, **overrides) -> NodeHarness:
    h = NodeHarness({"memory.timeout_s": 600.0, **overrides}, namespace=namespace).__enter__()
    if frames:
        for k in range(2):
            assert h.publish_and_wait(frame_messages(SCENE, 100.0 + 0.1 * k)), "frame not processed"
    return h


@pytest.fixture(scope="module")
def fake():
    if not rclpy.ok():
        rclpy.init()
    server = FakeVLM()
    yield server
    server.close()


@pytest.fixture(scope="module")
def harness(fake):
    h = _harness("fwd", frames=True, vlm_service=FAKE_SERVICE, vlm_timeout_s=30.0)
    assert wait_until(h.node.vlm.client.service_is_ready, 10.0), "the fake VLM was not discovered"
    yield h
    h.__exit__(None, None, None)


def _ask_in_thread(h: NodeHarness, question: str, timeout: float = 20.0):
    """Start ``question`` on ~/ask in a thread; returns (thread, result list)."""
    h.client(Ask, "ask")                     # created here, not concurrently in the threads
    out = []
    thread = threading.Thread(target=lambda: out.append(h.call(Ask, "ask", timeout, question=question)))
    thread.start()
    return thread, out


def test_free_form_question_is_forwarded_unchanged_and_the_reply_returned_as_is(harness, fake):
    fake.questions.clear()
    res = harness.call(Ask, "ask", question=FREE_FORM)
    assert fake.questions == [FREE_FORM]
    assert {name: getattr(res, name) for name in REPLY} == pytest.approx(REPLY)


def test_template_questions_are_answered_by_geometry_even_with_a_vlm_present(harness, fake):
    fake.questions.clear()
    box, mug = TRUTH["box"], TRUTH["mug"]
    res = harness.call(Ask, "ask", question="Is the mug to the left of the box?")
    assert res.success and res.kind == "yes_no" and res.yes == (mug.center_c[0] < box.center_c[0])
    assert res.answer != REPLY["answer"]
    res = harness.call(Ask, "ask", question="How far apart are the box and the mug?")
    assert res.success and res.kind == "metric"
    assert res.value == pytest.approx(np.linalg.norm(box.center_c - mug.center_c), abs=0.02)
    # parsed, but naming an unknown object / empty: the geometry path's own error, never the VLM
    res = harness.call(Ask, "ask", question="Is the unicorn to the left of the box?")
    assert not res.success and "unicorn" in res.message and "box_1" in res.message
    res = harness.call(Ask, "ask", question="   ")
    assert not res.success and "empty question" in res.message
    assert fake.questions == []


def test_a_waiting_forward_neither_blocks_template_answers_nor_deadlocks(harness, fake):
    fake.questions.clear()
    fake.gate.clear()
    try:
        thread, out = _ask_in_thread(harness, "What could I put in the mug?")
        assert wait_until(lambda: len(fake.questions) == 1, 5.0)
        res = harness.call(Ask, "ask", timeout=5.0, question="Is the box to the left of the mug?")
        assert res.success and res.kind == "yes_no"
        assert not out, "the forwarded question must still be waiting for the VLM"
    finally:
        fake.gate.set()
    thread.join(10.0)
    assert out and out[0].success and out[0].answer == REPLY["answer"]


def test_more_waiting_forwards_than_the_bound_are_refused_at_once(harness, fake):
    fake.questions.clear()
    fake.gate.clear()
    try:
        waiting = [_ask_in_thread(harness, f"Free question number {k}, what now?") for k in range(MAX_WAITING)]
        assert wait_until(lambda: len(fake.questions) == MAX_WAITING, 5.0)
        res = harness.call(Ask, "ask", timeout=5.0, question="One more free question, what now?")
        assert not res.success and "already waiting" in res.message and "try e.g." in res.message
        assert len(fake.questions) == MAX_WAITING
    finally:
        fake.gate.set()
    for thread, out in waiting:
        thread.join(10.0)
        assert out and out[0].success and out[0].answer == REPLY["answer"]


def test_without_a_vlm_server_the_refusal_is_clear_and_immediate(fake):
    h = _harness("novlm")            # default vlm_service: nothing serves /spatial_vlm/ask in this test
    try:
        assert h.node.vlm.service == "/spatial_vlm/ask" and h.node.vlm.timeout_s > 60.0
        res = h.call(Ask, "ask", timeout=5.0, question=FREE_FORM)      # far below vlm_timeout_s
        assert not res.success and res.kind == "" and not res.answer
        assert res.message.startswith("not understood: ")
        for needle in ("VLM unavailable: ", "no server on /spatial_vlm/ask",
                       "could not parse", "try e.g."):
            assert needle in res.message, res.message
    finally:
        h.__exit__(None, None, None)


def test_forwarding_off_says_so(fake):
    fake.questions.clear()
    h = _harness("vlmoff", vlm_service="")
    try:
        assert h.node.vlm.client is None
        res = h.call(Ask, "ask", timeout=5.0, question=FREE_FORM)
        assert not res.success and "parameter vlm_service is empty" in res.message and "try e.g." in res.message
        assert fake.questions == []
    finally:
        h.__exit__(None, None, None)


def test_a_vlm_that_does_not_answer_in_time_gives_a_timeout_refusal(fake):
    h = _harness("slow", vlm_service=FAKE_SERVICE, vlm_timeout_s=0.5)
    fake.questions.clear()
    fake.gate.clear()
    try:
        assert wait_until(h.node.vlm.client.service_is_ready, 10.0)
        res = h.call(Ask, "ask", timeout=5.0, question=FREE_FORM)
        assert not res.success and "did not answer within 0.5 s" in res.message and "try e.g." in res.message
        assert fake.questions == [FREE_FORM]
        fake.gate.set()                               # the late reply is dropped; the next question works
        fake.questions.clear()
        res = h.call(Ask, "ask", timeout=5.0, question="Any other free-form question, what now?")
        assert res.success and res.answer == REPLY["answer"]
    finally:
        fake.gate.set()
        h.__exit__(None, None, None)


def test_the_real_vlm_node_without_a_model_refuses_through_the_forward(fake):
    vlm = SpatialVLMNode(namespace="realvlm", parameter_overrides=[Parameter("require_image", value=False)])
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(vlm)
    thread = threading.Thread(target=executor.spin, name="vlm-node", daemon=False)
    thread.start()
    h = _harness("realvlm", vlm_service="/realvlm/spatial_vlm/ask")
    try:
        assert wait_until(h.node.vlm.client.service_is_ready, 10.0)
        res = h.call(Ask, "ask", timeout=10.0, question=FREE_FORM)
        assert not res.success and "no VLM model is configured" in res.message, res.message
        assert "not understood as a template question" in res.message and "/realvlm/spatial_vlm/ask" in res.message
    finally:
        h.__exit__(None, None, None)
        executor.shutdown()
        thread.join(10.0)
        vlm.destroy_node()

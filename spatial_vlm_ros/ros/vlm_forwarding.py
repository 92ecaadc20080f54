"""The one path by which questions reach the VLM: the perception node's ``~/ask`` forwards them.

The perception node answers template questions itself (``core.spatial_queries``). A question that no template
matches (``AskAnswer.recognised`` is False) is sent, unchanged, as an ``Ask`` request to the service named by
the parameter ``vlm_service`` (default ``/spatial_vlm/ask``, served by ``vlm_node``), and the VLM's response
comes back as is (a VLM refusal keeps its fields; its message is prefixed with where it came from). When
forwarding is off (``vlm_service: ""``), no server is up, too many forwarded questions already wait, or the
VLM does not answer within ``vlm_timeout_s``, the caller gets ``success=false`` and ``kind`` empty, with the
two facts kept apart in the message: the parser's "not understood: <hint>", then "VLM unavailable: <why>".

A template question asked with ``engine`` ``vlm`` or ``both`` (``vlm.ask_engines``) goes the same way through
``ask_grounded``, with the perception node's scene facts in the request's ``context``.

Threading: ``forward`` runs inside a service callback of a ``MultiThreadedExecutor``. It never spins: it
calls ``call_async`` and waits on the future with a timeout, while the executor delivers the reply on
another thread through the client's own callback group. At most ``max_waiting`` questions wait at once
(more are refused at once), so callers cannot take every executor thread, and a wait ends early when the
node is removed from its executor (shutdown). Template questions with the default engine never come
here: no service look-up on their path.
"""
from __future__ import annotations

import threading
import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from spatial_vlm_interfaces.srv import Ask
from spatial_vlm_ros.core.errors import InputError

MAX_WAITING = 1          # forwarded questions waiting at once: one of the perception node's 2 executor threads
POLL_S = 0.02            # how often a wait checks for shutdown, s


class VLMForwarder:
    """Client of the VLM's ``Ask`` service for one node; ``service=""`` turns forwarding off."""

    def __init__(self, node: Node, service: str, timeout_s: float, max_waiting: int = MAX_WAITING):
        self._node = node
        self.timeout_s = float(timeout_s)
        self.max_waiting = int(max_waiting)
        self._slots = threading.BoundedSemaphore(self.max_waiting)
        self._closed = threading.Event()
        self.client = None
        self.service = ""
        if service:
            try:
                self.client = node.create_client(Ask, service, callback_group=MutuallyExclusiveCallbackGroup())
            except Exception as err:  # rclpy's NameValidationException family
                raise InputError(f"invalid parameters: vlm_service: {err}") from None
            self.service = self.client.service_name     # resolved (namespace, remapping)

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def forward(self, question: str, parser_message: str):
        """The VLM's ``Ask.Response`` to ``question`` (sent unchanged), or ``success=false`` saying why no VLM
        answered, with ``parser_message`` (the template parser's hint) appended. Never raises for the caller's
        input; blocks at most ``timeout_s`` seconds."""
        response, failure = self.call(Ask.Request(question=question))
        if failure:
            return self._refusal(failure, parser_message)
        if not response.success:
            response.message = (f"not understood as a template question; the VLM on {self.service} could not "
                                f"answer: {response.message}")
        return response

    def ask_grounded(self, question: str, context: str):
        """``(response, "")``: the VLM's successful ``Ask.Response`` to a template question sent with the
        grounding ``context``; or ``(None, why not)``. Blocks at most ``timeout_s`` seconds."""
        response, failure = self.call(Ask.Request(question=question, context=context))
        if failure:
            return None, f"VLM unavailable: {failure}"
        if not response.success:
            return None, f"the VLM on {self.service} could not answer: {response.message}"
        return response, ""

    def call(self, request):
        """``(response, "")`` from the VLM, or ``(None, why no VLM answered)``: forwarding off, wrong executor,
        shutting down, no server, too many waiting, or no answer within ``timeout_s``."""
        if self.client is None:
            return None, "forwarding to a VLM is off (parameter vlm_service is empty)"
        if not isinstance(self._node.executor, MultiThreadedExecutor):
            return None, "forwarding needs the node to spin in a MultiThreadedExecutor"
        if self._closed.is_set():
            return None, "the node is shutting down"
        if not self.client.service_is_ready():
            return None, f"no server on {self.service} (is vlm_node running?)"
        if not self._slots.acquire(blocking=False):
            return None, f"{self.max_waiting} forwarded questions are already waiting for {self.service}"
        try:
            future = self.client.call_async(request)
            failure = self._wait(future)
            if failure:
                self.client.remove_pending_request(future)      # a late reply is dropped
                return None, failure
            return future.result(), ""
        finally:
            self._slots.release()

    def close(self) -> None:
        """Make waiting and later ``forward`` calls return at once (node shutdown)."""
        self._closed.set()

    def _wait(self, future) -> str:
        """Wait for ``future`` without spinning; '' when done, else why the wait ended."""
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        deadline = time.monotonic() + self.timeout_s
        executor = self._node.executor
        while not future.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0.0:
                return f"{self.service} did not answer within {self.timeout_s:g} s (parameter vlm_timeout_s)"
            if self._closed.is_set() or executor is None or self._node not in executor.get_nodes():
                return "the node is shutting down"
            done.wait(min(remaining, POLL_S))
        return ""

    def _refusal(self, reason: str, parser_message: str):
        message = f"VLM unavailable: {reason}"
        if parser_message:
            message = f"{parser_message}; {message}"
        return Ask.Response(success=False, message=message, kind="")

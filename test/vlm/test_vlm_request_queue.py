"""InferenceWorker: one request in flight, a bounded queue, per-request timeouts, clean refusals.

The engine is the real tiny model behind a gate, so the test decides when a request may run.
"""
import threading
import time

import pytest

from spatial_vlm_ros.vlm.engine import GenerationOptions, VLMRequest
from spatial_vlm_ros.vlm.request_queue import BusyError, InferenceWorker, ModelUnavailable, RequestTimeout

OPTS = GenerationOptions(max_new_tokens=3)


class GatedEngine:
    """Delegates to a real engine; ``generate`` blocks until ``gate`` is set and records concurrency."""

    def __init__(self, engine):
        self.engine, self.gate = engine, threading.Event()
        self.running = self.max_running = self.calls = 0
        self.lock = threading.Lock()

    def generate(self, requests, options):
        with self.lock:
            self.running += 1
            self.calls += 1
            self.max_running = max(self.max_running, self.running)
        try:
            self.gate.wait(10.0)
            return self.engine.generate(requests, options)
        finally:
            with self.lock:
                self.running -= 1

    def close(self):
        pass


def _wait_running(gated):
    deadline = time.monotonic() + 5
    while gated.running == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gated.running == 1


def test_queue_bound_single_flight_and_timeouts(torch_engine):
    gated = GatedEngine(torch_engine)
    worker = InferenceWorker(lambda: gated, max_queue=1).start()
    try:
        assert worker.wait_loaded(5.0) and worker.state == "ready"
        req = VLMRequest("Where is the mug?")
        first = worker.submit(req, OPTS)                         # runs (blocked at the gate)
        _wait_running(gated)
        second = worker.submit(req, OPTS)                        # waits in the queue (size 1)
        with pytest.raises(BusyError, match="busy"):
            worker.submit(req, OPTS)                             # queue full: refused at once
        with pytest.raises(BusyError):
            worker.ask(req, OPTS, timeout_s=0.1)
        assert worker.refused == 2
        gated.gate.set()
        expected = torch_engine.generate([req], OPTS)[0]
        assert first.result(10).token_ids == expected.token_ids
        assert second.result(10).token_ids == expected.token_ids
        assert gated.max_running == 1

        gated.gate.clear()
        blocker = worker.submit(req, OPTS)
        _wait_running(gated)
        with pytest.raises(RequestTimeout, match="no answer within 0.2 s"):
            worker.ask(req, OPTS, timeout_s=0.2)                 # queued behind the blocker, times out
        gated.gate.set()
        blocker.result(10)
        assert worker.ask(req, OPTS, timeout_s=10).token_ids == expected.token_ids
        assert gated.calls == 4                                  # the timed-out request never ran
    finally:
        gated.gate.set()
        worker.stop()
    assert not worker._thread.is_alive()


def test_unconfigured_and_failed_models_are_refused():
    worker = InferenceWorker(None).start()
    with pytest.raises(ModelUnavailable, match="no VLM model is configured"):
        worker.ask(VLMRequest("q"), OPTS, 1.0)
    worker.stop()

    def broken():
        raise OSError("no such model directory: /nowhere")
    worker = InferenceWorker(broken).start()
    assert worker.wait_loaded(5.0) and worker.state == "failed"
    with pytest.raises(ModelUnavailable, match="failed to load: OSError: no such model directory"):
        worker.ask(VLMRequest("q"), OPTS, 1.0)
    worker.stop()
    assert not worker._thread.is_alive()

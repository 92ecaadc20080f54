"""One worker thread per model: loads the engine, then answers requests one at a time from a bounded queue.

ROS-free, so the node's scheduling is unit-testable. Guarantees:
- at most one request is in flight on the model (the engine is only touched by the worker thread);
- at most ``max_queue`` requests wait; another one is refused at once with :class:`BusyError`;
- :meth:`InferenceWorker.ask` waits at most ``timeout_s`` (queueing included). A request that times out
  before it started is skipped; one already running finishes on the worker, its answer is dropped;
- with no model configured, or when loading failed, requests are refused at once with a clear message.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from spatial_vlm_ros.core.errors import SpatialError
from spatial_vlm_ros.vlm.engine import GenerationOptions, VLMAnswer, VLMEngine, VLMRequest

log = logging.getLogger(__name__)


class ModelUnavailable(SpatialError):
    """No model is configured, it is still loading past the deadline, or it failed to load."""


class BusyError(SpatialError):
    """The request queue is full."""


class RequestTimeout(SpatialError):
    """The answer did not come within the request's timeout."""


_STOP = object()


class InferenceWorker:
    """See the module doc. ``loader`` builds the engine on the worker thread (None: no model configured)."""

    def __init__(self, loader: Callable[[], VLMEngine] | None, max_queue: int = 2, name: str = "vlm-worker"):
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._loader = loader
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name=name, daemon=False)
        self._loaded = threading.Event()
        self.engine: VLMEngine | None = None
        self.state = "unconfigured" if loader is None else "loading"
        self.error = ""
        self.load_time_s = 0.0
        self.served = 0
        self.refused = 0

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self) -> InferenceWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 30.0) -> None:
        """Refuse what is still queued, let the running request finish, join the thread."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                item[2].cancel()
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=1.0)
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Wait until loading finished (successfully or not)."""
        return self._loaded.wait(timeout)

    # -- requests -----------------------------------------------------------------------------------------
    def submit(self, request: VLMRequest, options: GenerationOptions) -> concurrent.futures.Future:
        """Queue a request; raises ModelUnavailable or BusyError at once when it cannot be served."""
        self._check_available()
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            self._queue.put_nowait((request, options, future))
        except queue.Full:
            self.refused += 1
            raise BusyError(f"the VLM is busy ({self._queue.maxsize} requests already waiting); "
                            "try again later") from None
        return future

    def ask(self, request: VLMRequest, options: GenerationOptions, timeout_s: float) -> VLMAnswer:
        """Answer ``request`` within ``timeout_s`` seconds or raise (see the module doc)."""
        start = time.monotonic()
        return self.result(self.submit(request, options), timeout_s, start)

    def result(self, future, timeout_s: float, start: float) -> VLMAnswer:
        """The answer of a ``submit``-ted request, waiting until ``start + timeout_s`` (monotonic) at most."""
        try:
            return future.result(timeout=max(0.0, start + timeout_s - time.monotonic()))
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RequestTimeout(f"no answer within {timeout_s:.1f} s (model {self.state}, "
                                 f"waited {time.monotonic() - start:.1f} s)") from None
        except concurrent.futures.CancelledError:
            raise ModelUnavailable("the VLM worker is shutting down") from None

    def _check_available(self) -> None:
        if self.state == "unconfigured":
            raise ModelUnavailable("no VLM model is configured (set the 'model' parameter)")
        if self.state == "failed":
            raise ModelUnavailable(f"the VLM model failed to load: {self.error}")
        if self.state == "stopped":
            raise ModelUnavailable("the VLM worker is shutting down")

    # -- worker thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        if self._loader is not None:
            start = time.monotonic()
            try:
                self.engine = self._loader()
                self.state = "ready"
            except Exception as err:  # noqa: BLE001 - any loading failure is reported to every caller
                self.state, self.error = "failed", f"{type(err).__name__}: {err}"
                log.error("VLM model failed to load: %s", self.error)
            self.load_time_s = time.monotonic() - start
        self._loaded.set()
        while True:
            item = self._queue.get()
            if item is _STOP:
                self.state = "stopped" if self.state != "failed" else self.state
                return
            request, options, future = item
            if not future.set_running_or_notify_cancel():
                continue                                  # timed out or cancelled while queued
            if self.engine is None:
                future.set_exception(ModelUnavailable(
                    f"the VLM model failed to load: {self.error}" if self.error else "no VLM model loaded"))
                continue
            try:
                future.set_result(self.engine.generate([request], options)[0])
                self.served += 1
            except Exception as err:  # noqa: BLE001 - handed to the caller, never kills the worker
                future.set_exception(err)

"""Test helper: drive a lifecycle node through its standard services (lifecycle_msgs ``GetState`` /
``ChangeState`` under ``<node>/get_state``, ``<node>/change_state``), from a tester node.

Waiting for a reply: with ``executor`` given, that executor (holding the tester, not spun elsewhere) is
spun until the reply; otherwise a tester added to an executor is taken to be spun on another thread (the
call waits on the future), and a tester in no executor is spun by ``rclpy.spin_until_future_complete``.
Transitions go by label: ``configure``, ``activate``, ``deactivate``, ``cleanup``, ``shutdown``.

    lc = LifecycleClient(tester, "/ns/spatial_vlm")
    assert lc.state() == "unconfigured" and lc.change("configure") and lc.state() == "inactive"
"""
from __future__ import annotations

import time

import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import Executor
from rclpy.node import Node


class LifecycleClient:
    """Clients of one lifecycle node's ``get_state`` and ``change_state``; every call waits at most
    ``timeout_s`` seconds and raises ``TimeoutError`` when no reply came."""

    def __init__(self, tester: Node, node_name: str, timeout_s: float = 10.0, executor: Executor | None = None):
        self.node_name = node_name.rstrip("/")
        self.timeout_s = float(timeout_s)
        self._tester = tester
        self._executor = executor
        self._get = tester.create_client(GetState, f"{self.node_name}/get_state")
        self._change = tester.create_client(ChangeState, f"{self.node_name}/change_state")

    def wait_for_services(self, timeout_s: float | None = None) -> bool:
        """True when both services are up within ``timeout_s`` (default: the client's timeout)."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        return all(c.wait_for_service(timeout_sec=max(0.0, deadline - time.monotonic()))
                   for c in (self._get, self._change))

    def state(self) -> str:
        """The node's current state label: 'unconfigured', 'inactive', 'active', 'finalized', ..."""
        return self._call(self._get, GetState.Request()).current_state.label

    def change(self, transition: str) -> bool:
        """Request the transition ``transition`` (a label, e.g. 'configure'); True when it succeeded."""
        return self._call(self._change, ChangeState.Request(transition=Transition(label=transition))).success

    def _call(self, client, request):
        if not client.wait_for_service(timeout_sec=self.timeout_s):
            raise TimeoutError(f"{client.srv_name} is not available")
        future = client.call_async(request)
        if self._executor is not None:
            self._executor.spin_until_future_complete(future, timeout_sec=self.timeout_s)
        elif self._tester.executor is None:
            rclpy.spin_until_future_complete(self._tester, future, timeout_sec=self.timeout_s)
        else:
            deadline = time.monotonic() + self.timeout_s
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.005)
        if not future.done():
            client.remove_pending_request(future)
            raise TimeoutError(f"no reply from {client.srv_name} within {self.timeout_s:.1f} s")
        return future.result()

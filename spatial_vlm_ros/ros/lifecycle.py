"""What the package's lifecycle nodes share: the ``autostart`` parameter, start-up through the transitions,
and winding down before ``destroy_node``.

A node (an ``rclpy.lifecycle.LifecycleNode``) stores the reason of a failed transition in
``node.transition_error`` (a user-facing sentence) before returning FAILURE; ``autostart`` raises it as a
``SpatialError`` so ``spin.run_node`` exits 2 with that message, as for a plain node with bad parameters.
States and transitions are the standard managed-node ones (lifecycle_msgs): unconfigured -configure->
inactive -activate-> active, and back with deactivate / cleanup.
"""
from __future__ import annotations

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from spatial_vlm_ros.core.errors import SpatialError

AUTOSTART_DESCRIPTION = ("configure and activate at start-up, so `ros2 run` just works (false: wait in "
                         "'unconfigured' for a lifecycle manager's transitions)")


def declare_autostart(node: LifecycleNode) -> bool:
    """Declare the read-only bool parameter ``autostart`` (default true) and return its value."""
    descriptor = ParameterDescriptor(description=AUTOSTART_DESCRIPTION, read_only=True)
    return bool(node.declare_parameter("autostart", True, descriptor).value)


def state_label(node: LifecycleNode) -> str:
    """The node's current state: 'unconfigured', 'inactive', 'active', 'finalized' (or a transition)."""
    return node._state_machine.current_state[1]


def _transition(node: LifecycleNode, name: str) -> None:
    result = getattr(node, f"trigger_{name}")()
    if result != TransitionCallbackReturn.SUCCESS:
        reason = getattr(node, "transition_error", "") or f"{name} failed (see the node's log)"
        raise SpatialError(reason)


def autostart(node: LifecycleNode) -> None:
    """Configure, then activate ``node``; raises ``SpatialError`` with the node's reason when either fails
    (the node is then left in the state the failed transition returned it to)."""
    _transition(node, "configure")
    _transition(node, "activate")


def wind_down(node: LifecycleNode) -> None:
    """Deactivate an active node and clean up an inactive one, so its resources (threads, worker
    processes, subscriptions) are released before ``destroy_node``. Never raises."""
    try:
        if state_label(node) == "active":
            node.trigger_deactivate()
        if state_label(node) == "inactive":
            node.trigger_cleanup()
    except Exception as err:  # noqa: BLE001 - shutting down: report, do not stop the rest of the clean-up
        node.get_logger().error(f"winding down failed: {type(err).__name__}: {err}")

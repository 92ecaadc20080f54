"""What the package's lifecycle nodes share: the ``autostart`` parameter, start-up through the transitions,
and winding down before ``destroy_node``.

A node (an ``rclpy.lifecycle.LifecycleNode``) stores the reason of a failed transition in
``node.transition_error`` (a user-facing sentence) before returning FAILURE; ``autostart`` raises it as a
``SpatialError`` so ``spin.run_node`` exits 2 with that message (logged once), as for a plain node with bad
parameters.

Every start path (``ros2 run``, launch, ``spatial_vlm run``, a node built in Python) checks the overrides the
same way: the node is created with ``declaring_overrides(kwargs)``, so rclpy declares every override it was
given (``--params-file`` sections for its name, ``-p``, ``parameter_overrides``); ``take_overrides`` reports
the names the node does not declare and hands the others back to be declared with their descriptors, and
``warn_unmatched_files`` warns about a ``--params-file`` without a section for the node's (remapped,
namespaced) name.
States and transitions are the standard managed-node ones (lifecycle_msgs): unconfigured -configure->
inactive -activate-> active, and back with deactivate / cleanup.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn

from spatial_vlm_ros.core.errors import SpatialError
from spatial_vlm_ros.ros import overrides, spin

#: parameters rclpy declares on every node itself
RCLPY_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})

AUTOSTART_DESCRIPTION = ("configure and activate at start-up, so `ros2 run` just works (false: wait in "
                         "'unconfigured' for a lifecycle manager's transitions)")


def declare_autostart(node: LifecycleNode) -> bool:
    """Declare the read-only bool parameter ``autostart`` (default true) and return its value."""
    descriptor = ParameterDescriptor(description=AUTOSTART_DESCRIPTION, read_only=True)
    return bool(node.declare_parameter("autostart", True, descriptor).value)


def declaring_overrides(kwargs: dict) -> dict:
    """Node constructor ``kwargs`` with which rclpy declares every parameter override it is given (read back
    by ``take_overrides``)."""
    return {**kwargs, "automatically_declare_parameters_from_overrides": True}


def take_overrides(node: LifecycleNode, known: Iterable[str]) -> list[str]:
    """Call right after the constructor of a node made with ``declaring_overrides``: undeclare what rclpy
    declared from the overrides (the node declares its own parameters next, with their descriptors; the
    override values still apply) and return one message per override that is not in ``known`` (with the
    closest known name)."""
    known = set(known) | RCLPY_PARAMETERS
    given = [name for name in node.list_parameters([], 0).names if name not in RCLPY_PARAMETERS]
    for name in given:
        node.undeclare_parameter(name)
    return [overrides.unknown_parameter(name, known) for name in given if name not in known]


def warn_unmatched_files(node: LifecycleNode, cli_args=None) -> list[str]:
    """Log (and return) a warning for each ``--params-file`` given to this process (``spin.init``'s arguments,
    else ``sys.argv``) or in the node's own ``cli_args`` that has no section for the node's fully qualified
    name."""
    given = spin.init_arguments()
    files = overrides.params_file_arguments(sys.argv if given is None else given)
    files += overrides.params_file_arguments(cli_args)
    warnings = [w for f in dict.fromkeys(files)
                for w in [overrides.unmatched_file_warning(f, node.get_fully_qualified_name())] if w]
    for warning in warnings:
        node.get_logger().warning(warning)
    return warnings


class TransitionFailed(SpatialError):
    """A transition of ``autostart`` failed; the node has logged the reason already."""

    already_logged = True


def state_label(node: LifecycleNode) -> str:
    """The node's current state: 'unconfigured', 'inactive', 'active', 'finalized' (or a transition)."""
    return node._state_machine.current_state[1]


def _transition(node: LifecycleNode, name: str) -> None:
    result = getattr(node, f"trigger_{name}")()
    if result != TransitionCallbackReturn.SUCCESS:
        reason = getattr(node, "transition_error", "") or f"{name} failed (see the node's log)"
        raise TransitionFailed(reason)


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

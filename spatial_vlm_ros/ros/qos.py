"""QoS profiles of the node's topics.

- Camera inputs use sensor-data QoS (best effort, keep last, volatile): a late frame is worth nothing and a
  reliable publisher at camera rate can fail to publish under load. Best-effort subscriptions also match
  reliable publishers.
- Outputs (objects, markers) are reliable, keep last, so a planner or RViz gets every published state.
- Diagnostics follow the diagnostic_aggregator's expectation (reliable, keep last).
"""
from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


def sensor_qos(depth: int = 5) -> QoSProfile:
    """Camera streams: best effort, keep last ``depth``, volatile."""
    return QoSProfile(reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST,
                      depth=max(int(depth), 1), durability=DurabilityPolicy.VOLATILE)


def output_qos(depth: int = 10) -> QoSProfile:
    """Objects and markers: reliable, keep last ``depth``, volatile."""
    return QoSProfile(reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                      depth=max(int(depth), 1), durability=DurabilityPolicy.VOLATILE)


def diagnostics_qos() -> QoSProfile:
    """``/diagnostics``: reliable, keep last 10."""
    return output_qos(10)

"""Start the package's node(s) from a parameter file without ``launch`` (which PyPI ROS does not ship).

    python -m spatial_vlm_ros.ros.run --params config/perception.yaml [--namespace robot1] [--detector tabletop]

does what ``ros2 launch spatial_vlm_ros perception.launch.py params_file:=... namespace:=... detector:=...``
does on a full ROS install: one ``spatial_perception`` node with the file's ``ros__parameters`` (keys ``/**``,
``/**/spatial_perception`` or the node's fully qualified name), in the namespace given, with the detector
overridden when asked. The file is checked first, so a typo fails with a clear message before ROS starts.
Extra ROS arguments (remappings, log level) go after ``--ros-args``.
"""
from __future__ import annotations

import argparse
import sys

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.ros.parameters import NODE_NAME, load_parameter_file, validate_values


def ros_arguments(params_file: str, namespace: str = "", detector: str | None = None,
                  extra_ros_args=()) -> list[str]:
    """The ``--ros-args`` list that applies the parameter file, namespace and detector override."""
    args = ["--ros-args", "--params-file", params_file]
    if namespace.strip("/"):
        args += ["-r", f"__ns:=/{namespace.strip('/')}"]
    if detector:
        args += ["-p", f"detector:={detector}"]
    return args + list(extra_ros_args)


def check_parameter_file(params_file: str, namespace: str = "", detector: str | None = None) -> dict:
    """Validated parameter values the node will get; raises ``InputError`` naming every problem."""
    overrides = load_parameter_file(params_file, NODE_NAME, namespace)
    if detector:
        overrides["detector"] = detector
    return validate_values(overrides)


def run(params_file: str, namespace: str = "", detector: str | None = None, extra_ros_args=()) -> int:
    """Check ``params_file``, start the node(s) and spin until Ctrl-C; returns the exit code (0 = clean)."""
    try:
        check_parameter_file(params_file, namespace, detector)
    except InputError as err:
        print(f"spatial_vlm_ros: {err}", file=sys.stderr)
        return 2
    import rclpy

    from spatial_vlm_ros.ros import spin
    from spatial_vlm_ros.ros.perception_node import SpatialPerceptionNode

    spin.init(args=["spatial_vlm_ros"] + ros_arguments(params_file, namespace, detector, extra_ros_args))
    try:
        nodes = [SpatialPerceptionNode()]
    except KeyboardInterrupt:
        rclpy.try_shutdown()
        return 0
    except InputError as err:
        print(f"spatial_vlm_ros: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    return spin.spin_until_shutdown(nodes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``run`` (for the package CLI's ``run`` sub-command)."""
    parser.add_argument("--params", required=True, help="ROS 2 parameter file, e.g. config/perception.yaml")
    parser.add_argument("--namespace", default="", help="namespace of the node(s), e.g. robot1")
    parser.add_argument("--detector", choices=("external", "tabletop"), default=None,
                        help="override the file's detector")


def main(argv=None) -> int:
    """``python -m spatial_vlm_ros.ros.run --params FILE [--namespace NS] [--detector D] [--ros-args ...]``."""
    try:
        return _main(argv)
    except KeyboardInterrupt:             # Ctrl-C while still starting up
        return 0


def _main(argv) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_extra = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(prog="python -m spatial_vlm_ros.ros.run", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args.params, args.namespace, args.detector, ros_extra)


if __name__ == "__main__":
    raise SystemExit(main())

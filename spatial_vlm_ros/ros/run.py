"""Start the package's node(s) from parameter files without ``launch`` (which PyPI ROS does not ship).

    python -m spatial_vlm_ros.ros.run --params config/perception.yaml [--namespace robot1] \
        [--detector tabletop] [--sensor-profile stereo] [--nodes perception vlm] \
        [--ros-args -r ... --log-level debug]

does what ``ros2 launch spatial_vlm_ros perception.launch.py params_file:=... namespace:=... detector:=...``
does on a full ROS install: the ``spatial_perception`` node (and, with ``--nodes ... vlm``, the
``spatial_vlm`` node) in one process, with the file's ``ros__parameters`` (keys ``/**``,
``/**/<node name>`` or the node's fully qualified name), in the namespace given, with the detector overridden
when asked. ``--sensor-profile`` loads a sensor's uncertainty overlay (``config/sensors/<name>.yaml``, or a
file's path) after the perception file, as ``sensor_profile:=`` does in the launch file. A node the given
file has no section for reads its default file (``config/<node>.yaml``); a file with a section for none of
the nodes is refused. Each node gets its own file as node arguments (``cli_args``),
so no node sees another's parameters; ``-p`` after ``--ros-args`` reaches every node of the process. The
perception parameters are checked first, so a typo fails with a clear message before ROS starts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from spatial_vlm_ros.core.errors import InputError, SpatialError
from spatial_vlm_ros.ros.overrides import file_sections, section_matches
from spatial_vlm_ros.ros.parameters import NODE_NAME, load_parameter_file, validate_values

#: node key -> (ROS node name, default parameter file name under config/)
NODES = {"perception": (NODE_NAME, "perception.yaml"), "vlm": ("spatial_vlm", "vlm.yaml")}
#: uncertainty profiles shipped as config/sensors/<name>.yaml (fitted by benchmarks/fit_uncertainty.py
#: --write-profiles; docs/uncertainty.md)
SENSOR_PROFILES = ("gaussian", "stereo", "tof")


def _config_file(relative: str) -> str:
    """``config/<relative>`` of the source tree, else of the installed package share directory."""
    source = Path(__file__).resolve().parents[2] / "config" / relative
    if source.is_file():
        return str(source)
    try:
        from ament_index_python.packages import get_package_share_directory
        return str(Path(get_package_share_directory("spatial_vlm_ros")) / "config" / relative)
    except (ImportError, LookupError):
        return str(source)


def default_params_file(node: str) -> str:
    """``config/<node>.yaml`` of the source tree, else of the installed package share directory."""
    return _config_file(NODES[node][1])


def sensor_profile_file(profile: str) -> str:
    """The parameter overlay of a sensor profile: one of ``SENSOR_PROFILES`` (``config/sensors/<name>.yaml``)
    or the path of such a file. Raises ``InputError`` for anything else."""
    if profile in SENSOR_PROFILES:
        return _config_file(f"sensors/{profile}.yaml")
    if Path(profile).is_file():
        return profile
    raise InputError(f"sensor profile '{profile}' is neither one of {', '.join(SENSOR_PROFILES)} "
                     f"nor an existing file")


def _fq_name(node_name: str, namespace: str = "") -> str:
    ns = namespace.strip("/")
    return f"/{ns}/{node_name}" if ns else f"/{node_name}"


def _has_section(params_file: str, node_name: str, namespace: str = "") -> bool:
    try:
        with open(params_file, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError):
        return False
    return any(section_matches(key, _fq_name(node_name, namespace)) for key in file_sections(doc))


def node_parameter_file(node: str, params_file: str | None, namespace: str = "") -> str:
    """The file ``node`` (a key of ``NODES``) reads: ``params_file`` when it has a section for the node, else
    the node's default file."""
    if params_file and _has_section(params_file, NODES[node][0], namespace):
        return params_file
    return default_params_file(node)


def parameter_files(nodes, params_file: str | None, namespace: str = "") -> list[str]:
    """The files to load: ``params_file`` (if any) plus the default file of each node it does not cover."""
    files = [params_file] if params_file else []
    files += [node_parameter_file(node, params_file, namespace) for node in nodes]
    return list(dict.fromkeys(files))


def ros_arguments(params_files, namespace: str = "", detector: str | None = None, extra_ros_args=()) -> list[str]:
    """The ``--ros-args`` list that applies the parameter files, namespace and detector override."""
    if isinstance(params_files, str):
        params_files = [params_files]
    args = ["--ros-args"]
    for f in params_files:
        args += ["--params-file", f]
    if namespace.strip("/"):
        args += ["-r", f"__ns:=/{namespace.strip('/')}"]
    if detector:
        args += ["-p", f"detector:={detector}"]       # only the perception node declares it
    return args + list(extra_ros_args)


PARAMETER_FLAGS = ("-p", "--param", "--params-file")


def parameter_arguments(ros_args) -> list[str]:
    """The parameter arguments (``-p name:=value``, ``--param``, ``--params-file FILE``) among ``ros_args``.

    A node's own arguments take precedence over the context's, so the user's parameter arguments are
    repeated after the node's files: ``--ros-args -p memory.timeout_s:=60.0`` then wins over the file's value,
    as it does with ``ros2 run``.
    """
    args, out = list(ros_args), []
    for i, arg in enumerate(args[:-1]):
        if arg in PARAMETER_FLAGS:
            out += [arg, args[i + 1]]
    return out


def node_arguments(node: str, files: list[str], detector: str | None = None, ros_args=()) -> list[str]:
    """A node's own ``--ros-args``: its parameter files, the detector override (perception only), then the
    user's parameter arguments from ``ros_args`` (so they win over the files)."""
    return ros_arguments(files, "", detector if node == "perception" else None, parameter_arguments(ros_args))


def check_parameter_file(params_file, namespace: str = "", detector: str | None = None) -> dict:
    """Validated perception parameters the node will get from ``params_file`` (a path, or a list of paths
    where a later file wins, as rcl applies them); raises ``InputError`` naming every problem."""
    overrides: dict = {}
    for path in [params_file] if isinstance(params_file, str) else params_file:
        overrides.update(load_parameter_file(path, NODE_NAME, namespace))
    if detector:
        overrides["detector"] = detector
    return validate_values(overrides)


def _make_node(node: str, cli_args: list[str]):
    if node == "perception":
        from spatial_vlm_ros.ros.perception_node import SpatialPerceptionNode
        return SpatialPerceptionNode(cli_args=cli_args)
    from spatial_vlm_ros.ros.vlm_node import SpatialVLMNode
    return SpatialVLMNode(cli_args=cli_args)


def checked_node_files(nodes, params_file: str | None, namespace: str = "", detector: str | None = None,
                       sensor_profile: str | None = None) -> dict[str, list[str]]:
    """The parameter files of each node (a later one wins), the perception values already validated.

    Raises ``InputError`` for a missing or unmatched ``params_file``, a bad sensor profile or bad values.
    """
    files = {node: [node_parameter_file(node, params_file, namespace)] for node in nodes}
    if sensor_profile:
        if "perception" not in nodes:
            raise InputError("a sensor profile sets the perception node's parameters; start it too")
        files["perception"].append(sensor_profile_file(sensor_profile))
    if params_file and all(params_file != f[0] for f in files.values()):
        if not Path(params_file).is_file():
            raise InputError(f"parameter file {params_file} not found")
        raise InputError(f"parameter file {params_file} has no section for "
                         f"{', '.join(_fq_name(NODES[n][0], namespace) for n in nodes)} (keys rcl matches: "
                         f"'/**', '/**/<node name>' or the fully qualified node name)")
    if "perception" in nodes:
        check_parameter_file(files["perception"], namespace, detector)
    return files


def run_nodes(nodes=("perception",), params_file: str | None = None, namespace: str = "",
              detector: str | None = None, ros_args=(), prog: str = "spatial_vlm_ros",
              sensor_profile: str | None = None) -> int:
    """Start ``nodes`` (keys of ``NODES``) in this process and spin until Ctrl-C / SIGTERM.

    ``sensor_profile`` (see ``sensor_profile_file``) is loaded after the perception node's file.

    Returns the exit code: 0 after a clean shutdown, 2 for invalid parameters or an unknown node (one line on
    stderr, ``<prog>: <reason>``).
    """
    nodes = list(dict.fromkeys(nodes or ["perception"]))
    unknown = [n for n in nodes if n not in NODES]
    if unknown:
        print(f"{prog}: unknown node(s) {', '.join(unknown)} (known: {', '.join(NODES)})", file=sys.stderr)
        return 2
    try:
        files = checked_node_files(nodes, params_file, namespace, detector, sensor_profile)
    except InputError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    import rclpy

    from spatial_vlm_ros.ros import spin

    created = []
    try:
        spin.init(args=["spatial_vlm_ros"] + ros_arguments([], namespace, None, ros_args))
        for node in nodes:
            created.append(_make_node(node, node_arguments(node, files[node], detector, ros_args)))
    except (KeyboardInterrupt, SpatialError) as err:
        if isinstance(err, SpatialError) and not getattr(err, "already_logged", False):
            print(f"{prog}: {err}", file=sys.stderr)
        for node in created:
            node.destroy_node()
        rclpy.try_shutdown()
        return 0 if isinstance(err, KeyboardInterrupt) else 2
    return spin.spin_until_shutdown(created)


def run(params_file: str, namespace: str = "", detector: str | None = None, extra_ros_args=()) -> int:
    """The perception node alone from ``params_file``; see ``run_nodes``."""
    return run_nodes(["perception"], params_file, namespace, detector, extra_ros_args)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``run`` (for a command-line ``run`` sub-command)."""
    parser.add_argument("--params", default=None,
                        help="ROS 2 parameter file (default: config/<node>.yaml for each node)")
    parser.add_argument("--namespace", default="", help="namespace of the node(s), e.g. robot1")
    from spatial_vlm_ros.pipeline import DETECTORS
    parser.add_argument("--detector", choices=DETECTORS, default=None,
                        help="override the file's detector")
    parser.add_argument("--sensor-profile", default=None, metavar="NAME|FILE",
                        help=f"depth sensor's uncertainty profile loaded after the perception file: "
                        f"{', '.join(SENSOR_PROFILES)} (config/sensors/NAME.yaml) or a file")
    parser.add_argument("--nodes", nargs="+", default=["perception"], choices=list(NODES),
                        help="nodes to start in this process")


def main(argv=None) -> int:
    """Command line of this module; ROS arguments (remappings, log level) go after ``--ros-args``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_extra = []
    if "--ros-args" in argv:
        i = argv.index("--ros-args")
        argv, ros_extra = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(prog="python -m spatial_vlm_ros.ros.run",
                                     description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_nodes(args.nodes, args.params, args.namespace, args.detector, ros_extra,
                         sensor_profile=args.sensor_profile)
    except KeyboardInterrupt:             # Ctrl-C while still starting up
        return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""One command-line entry with sub-commands: ``spatial_vlm <command>`` or ``python -m spatial_vlm_ros.cli``.

Commands that start ROS must run under ``scripts/ros_env.sh`` (the Makefile and README do this), which
confines DDS traffic to this machine.
"""
from __future__ import annotations

import argparse
import sys


def _cmd_run(args: argparse.Namespace) -> int:
    from spatial_vlm_ros.ros.run import run_nodes
    return run_nodes(args.nodes, params_file=args.params, namespace=args.namespace,
                     detector=args.detector, ros_args=args.ros_args)


def _cmd_generate(args: argparse.Namespace) -> int:
    from spatial_vlm_ros.sim.dataset import generate_scenes
    generate_scenes(args.out, n_scenes=args.scenes, frames_per_scene=args.frames, noise=not args.no_noise,
                    seed=args.seed, width=args.width, height=args.height, sensor=args.sensor)
    return 0


def _cmd_bag_write(args: argparse.Namespace) -> int:
    from spatial_vlm_ros.bag.writer import write_dataset_bag
    write_dataset_bag(args.dataset, args.bag, storage=args.storage)
    return 0


def _cmd_bag_play(args: argparse.Namespace) -> int:
    from spatial_vlm_ros.bag.player import BagPlayer
    return BagPlayer(args.bag, rate=args.rate, loop=args.loop, start_offset=args.start,
                     topics=args.topics or None).run()


def _cmd_bag_record(args: argparse.Namespace) -> int:
    from spatial_vlm_ros.bag.recorder import BagRecorder
    return BagRecorder(args.bag, topics=args.topics, storage=args.storage, duration=args.duration).run()


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from spatial_vlm_ros.core.errors import SpatialError
    from spatial_vlm_ros.evaluation.runner import evaluate
    vlm = {"engine": args.engine, "vlm_model": args.vlm_model, "vlm_timeout_s": args.vlm_timeout,
           "vlm_parameters": {"backend": args.vlm_backend, "device": args.vlm_device}}
    subsets = {"relations": set(args.relations) if args.relations else None,
               "quantities": set(args.quantities) if args.quantities else None}
    try:
        summary = evaluate(args.bag, args.ground_truth, args.out, detector=args.detector,
                           params_file=args.params, rate=args.rate, **vlm, **subsets)
    except SpatialError as err:
        print(f"spatial_vlm evaluate: {err}", file=sys.stderr)
        return 2
    return 0 if summary else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from spatial_vlm_ros.evaluation.demo import run_demo
    return run_demo(out_dir=args.out, n_scenes=args.scenes, seed=args.seed)


def _cmd_export_onnx(args: argparse.Namespace) -> int:
    if any(a == "--part" or a.startswith("--part=") for a in args.rest):   # learned perception parts
        from spatial_vlm_ros.perception.learned_cli import export_main as part_export_main
        return part_export_main(args.rest)
    from spatial_vlm_ros.vlm.onnx_export import main as export_main
    return export_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spatial_vlm", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="start the node(s) from a parameter file (no `launch` needed)")
    r.add_argument("--params", default=None, help="parameter YAML (default: config/perception.yaml)")
    r.add_argument("--namespace", default="")
    from spatial_vlm_ros.core.pipeline import DETECTORS
    r.add_argument("--detector", default=None, choices=DETECTORS, help="override the file's detector")
    r.add_argument("--nodes", nargs="+", default=["perception"], choices=["perception", "vlm"])
    r.add_argument("--ros-args", nargs=argparse.REMAINDER, default=[], help="passed to rclpy (remappings)")
    r.set_defaults(func=_cmd_run)

    g = sub.add_parser("generate", help="render simulated RGB-D tabletop scenes with ground truth")
    g.add_argument("--out", required=True)
    g.add_argument("--scenes", type=int, default=5)
    g.add_argument("--frames", type=int, default=1, help="frames per scene (moving camera, 30 Hz)")
    g.add_argument("--no-noise", action="store_true", help="perfect depth instead of a sensor model")
    from spatial_vlm_ros.sim.depth_sensors import DEFAULT_SENSOR, SENSORS
    g.add_argument("--sensor", choices=tuple(SENSORS), default=DEFAULT_SENSOR,
                   help="depth sensor model (docs/sensor_models.md)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--width", type=int, default=640)
    g.add_argument("--height", type=int, default=480)
    g.set_defaults(func=_cmd_generate)

    b = sub.add_parser("bag", help="rosbag2 tools")
    bsub = b.add_subparsers(dest="bag_command", required=True)
    bw = bsub.add_parser("write", help="write a generated scene set as a rosbag2 bag + ground truth sidecar")
    bw.add_argument("dataset")
    bw.add_argument("bag")
    bw.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    bw.set_defaults(func=_cmd_bag_write)
    bp = bsub.add_parser("play", help="publish a bag at recorded timing")
    bp.add_argument("bag")
    bp.add_argument("--rate", type=float, default=1.0)
    bp.add_argument("--loop", action="store_true")
    bp.add_argument("--start", type=float, default=0.0, help="start offset, seconds")
    bp.add_argument("--topics", nargs="*")
    bp.set_defaults(func=_cmd_bag_play)
    br = bsub.add_parser("record", help="record topics of a live graph to a bag")
    br.add_argument("bag")
    br.add_argument("--topics", nargs="+", required=True)
    br.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    br.add_argument("--duration", type=float, default=None, help="seconds; default until Ctrl-C")
    br.set_defaults(func=_cmd_bag_record)

    e = sub.add_parser("evaluate", help="replay a bag through the node and score answers against ground truth")
    e.add_argument("bag")
    e.add_argument("--ground-truth", default=None, help="ground-truth JSON (default: the bag's sidecar)")
    e.add_argument("--out", default="out/eval")
    e.add_argument("--detector", default="external", choices=["external", "boxes", "tabletop"])
    e.add_argument("--params", default=None)
    e.add_argument("--rate", type=float, default=1.0)
    e.add_argument("--engine", default="geometry", choices=["geometry", "vlm"],
                   help="who answers: the geometry (typed services) or the VLM (~/ask with engine vlm)")
    e.add_argument("--vlm-model", default="", help="engine vlm: HF id or directory (onnx: export directory)")
    e.add_argument("--vlm-backend", default="transformers", choices=["transformers", "onnx"])
    e.add_argument("--vlm-device", default="cpu")
    e.add_argument("--vlm-timeout", type=float, default=120.0,
                   help="engine vlm: longest wait for one answer, s (the first includes loading the model)")
    e.add_argument("--relations", nargs="+", default=None, help="ask only these relations, e.g. left_of behind")
    e.add_argument("--quantities", nargs="+", default=None, help="ask only these quantities, e.g. distance")
    e.set_defaults(func=_cmd_evaluate)

    d = sub.add_parser("demo", help="the `make demo` flow: simulate, replay, ask, score, report")
    d.add_argument("--out", default="out/demo")
    d.add_argument("--scenes", type=int, default=None)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo)

    x = sub.add_parser("export-onnx", add_help=False,     # --help goes to the exporter's own parser
                       help="export a VLM to ONNX (--model ID_OR_DIR --out DIR; the family comes from its "
                       "config), or with --part detector|segmenter|depth a learned perception part "
                       "(see models/README.md)")
    x.add_argument("rest", nargs=argparse.REMAINDER)
    x.set_defaults(func=_cmd_export_onnx)
    from spatial_vlm_ros.perception.learned_cli import add_subcommands   # make-tiny-models, fetch-models
    add_subcommands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "export-onnx":   # the exporter parses its own options, in their original order
        args.rest = argv[argv.index("export-onnx") + 1:]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""One command-line entry with sub-commands: ``spatial_vlm <command>`` or ``python -m spatial_vlm_ros.cli``.

Commands that start ROS must run under ``scripts/ros_env.sh`` (the Makefile and README do this), which
confines DDS traffic to this machine and puts ``spatial_vlm`` on PATH.

Errors are one line on stderr, ``spatial_vlm <command>: <reason>``, with exit code 2: bad arguments (checked by
argparse types: missing files, non-positive rates), the package's ``SpatialError``s and missing files raised by
a command, and a ROS command run where ROS 2 or this workspace's messages cannot be imported.
"""
from __future__ import annotations

import argparse
import os
import sys

ROS_HINT = ("run it through scripts/ros_env.sh (`scripts/ros_env.sh spatial_vlm {command} ...`) or source the "
            "workspace first (`source install/setup.bash`)")


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``<prog>: <message> (see <prog> --help)``, exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    if text.strip() in ("0", "0.0", "-0", "-0.0"):
        return 0.0
    return positive_float(text)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def existing_file(text: str) -> str:
    """argparse type: the path of an existing file."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text}: no such file" if not os.path.exists(text) else f"{text}: not a file")
    return text


def existing_path(text: str) -> str:
    """argparse type: an existing file or directory (a bag is either)."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text}: no such file or directory")
    return text


def ros_import_problem() -> str | None:
    """Why ROS 2 (rclpy) or this workspace's messages cannot be imported here, or None."""
    try:
        import rclpy  # noqa: F401

        from spatial_vlm_interfaces.msg import SpatialObjectArray  # noqa: F401
    except ImportError as err:
        return str(err)
    return None


def _cmd_run(args: argparse.Namespace) -> int:
    from spatial_vlm_ros.ros.run import run_nodes
    return run_nodes(args.nodes, params_file=args.params, namespace=args.namespace,
                     detector=args.detector, ros_args=args.ros_args, prog="spatial_vlm run",
                     sensor_profile=args.sensor_profile)


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


#: commands whose own parser (a module's ``main(argv)``) reads every option after the command name
FORWARDED = {
    "export-onnx": None,     # dispatched by _cmd_export_onnx (VLM or learned perception part)
    "finetune": "spatial_vlm_ros.training.lora:main",
    "train": "spatial_vlm_ros.training.train_compact:main",
    "evaluate-vlm": "spatial_vlm_ros.training.evaluate_vlm:main",
}


def _cmd_forwarded(args: argparse.Namespace) -> int:
    from importlib import import_module

    module, _, function = FORWARDED[args.command].partition(":")
    return int(getattr(import_module(module), function)(args.rest) or 0)


def _cmd_synthesize(args: argparse.Namespace) -> int:
    from spatial_vlm_ros.core.errors import SpatialError
    from spatial_vlm_ros.synthesis.local import synthesize_to_disk
    from spatial_vlm_ros.synthesis.templates import SynthesisConfig
    try:
        if args.address and args.engine != "ray":
            raise SpatialError("--address needs --engine ray")
        kinds = tuple(args.kinds) if args.kinds else SynthesisConfig.kinds
        config = SynthesisConfig(min_confidence=args.min_confidence, kinds=kinds, max_per_frame=args.max_per_frame)
        options = {"width": args.width, "height": args.height, "image_width": args.image_width,
                   "image_height": args.image_height, "detector": args.detector}
        if args.source in ("analytic", "sim") and args.scene_seed is not None:
            options["seed"] = args.scene_seed
        manifest = synthesize_to_disk(args.source, args.scenes, args.seed, args.out, engine=args.engine,
                                      workers=args.workers, synthesis=config, address=args.address,
                                      overwrite=args.overwrite, **options)
    except SpatialError as err:
        print(f"spatial_vlm synthesize: {err}", file=sys.stderr)
        return 2
    print(f"synthesized {manifest['rows']} QA rows from {manifest['frames']} frames "
          f"({manifest['frames_skipped']} skipped) in {manifest['seconds']:.1f} s -> {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="spatial_vlm", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="start the node(s) from a parameter file (no `launch` needed)")
    r.add_argument("--params", type=existing_file, default=None,
                   help="parameter YAML (default: config/perception.yaml)")
    r.add_argument("--namespace", default="")
    from spatial_vlm_ros.pipeline import DETECTORS
    r.add_argument("--detector", default=None, choices=DETECTORS, help="override the file's detector")
    from spatial_vlm_ros.ros.run import SENSOR_PROFILES
    r.add_argument("--sensor-profile", default=None, metavar="NAME|FILE",
                   help=f"depth sensor's uncertainty profile after the perception file: {', '.join(SENSOR_PROFILES)} "
                   "(config/sensors/NAME.yaml) or a file")
    r.add_argument("--nodes", nargs="+", default=["perception"], choices=["perception", "vlm"])
    r.add_argument("--ros-args", nargs=argparse.REMAINDER, default=[], help="passed to rclpy (remappings)")
    r.set_defaults(func=_cmd_run, needs_ros=True)

    g = sub.add_parser("generate", help="render simulated RGB-D tabletop scenes with ground truth")
    g.add_argument("--out", required=True)
    g.add_argument("--scenes", type=positive_int, default=5)
    g.add_argument("--frames", type=positive_int, default=1, help="frames per scene (moving camera, 30 Hz)")
    g.add_argument("--no-noise", action="store_true", help="perfect depth instead of a sensor model")
    from spatial_vlm_ros.sim.depth_sensors import DEFAULT_SENSOR, SENSORS
    g.add_argument("--sensor", choices=tuple(SENSORS), default=DEFAULT_SENSOR,
                   help="depth sensor model (docs/sensor_models.md)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--width", type=positive_int, default=640)
    g.add_argument("--height", type=positive_int, default=480)
    g.set_defaults(func=_cmd_generate)

    b = sub.add_parser("bag", help="rosbag2 tools")
    bsub = b.add_subparsers(dest="bag_command", required=True)
    bw = bsub.add_parser("write", help="write a generated scene set as a rosbag2 bag + ground truth sidecar")
    bw.add_argument("dataset", type=existing_path)
    bw.add_argument("bag")
    bw.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    bw.set_defaults(func=_cmd_bag_write)
    bp = bsub.add_parser("play", help="publish a bag at recorded timing")
    bp.add_argument("bag", type=existing_path)
    bp.add_argument("--rate", type=positive_float, default=1.0, help="speed factor (> 0)")
    bp.add_argument("--loop", action="store_true")
    bp.add_argument("--start", type=non_negative_float, default=0.0, help="start offset, seconds")
    bp.add_argument("--topics", nargs="*")
    bp.set_defaults(func=_cmd_bag_play, needs_ros=True)
    br = bsub.add_parser("record", help="record topics of a live graph to a bag")
    br.add_argument("bag")
    br.add_argument("--topics", nargs="+", required=True)
    br.add_argument("--storage", default="mcap", choices=["mcap", "sqlite3"])
    br.add_argument("--duration", type=positive_float, default=None, help="seconds; default until Ctrl-C")
    br.set_defaults(func=_cmd_bag_record, needs_ros=True)

    e = sub.add_parser("evaluate", help="replay a bag through the node and score answers against ground truth")
    e.add_argument("bag", type=existing_path)
    e.add_argument("--ground-truth", type=existing_file, default=None,
                   help="ground-truth JSON (default: the bag's sidecar)")
    e.add_argument("--out", default="out/eval")
    e.add_argument("--detector", default="external", choices=["external", "boxes", "tabletop"])
    e.add_argument("--params", type=existing_file, default=None)
    e.add_argument("--rate", type=positive_float, default=1.0, help="playback speed factor (> 0)")
    e.add_argument("--engine", default="geometry", choices=["geometry", "vlm"],
                   help="who answers: the geometry (typed services) or the VLM (~/ask with engine vlm)")
    e.add_argument("--vlm-model", default="", help="engine vlm: HF id or directory (onnx: export directory)")
    e.add_argument("--vlm-backend", default="transformers", choices=["transformers", "onnx"])
    e.add_argument("--vlm-device", default="cpu")
    e.add_argument("--vlm-timeout", type=positive_float, default=120.0,
                   help="engine vlm: longest wait for one answer, s (the first includes loading the model)")
    e.add_argument("--relations", nargs="+", default=None, help="ask only these relations, e.g. left_of behind")
    e.add_argument("--quantities", nargs="+", default=None, help="ask only these quantities, e.g. distance")
    e.set_defaults(func=_cmd_evaluate, needs_ros=True)

    d = sub.add_parser("demo", help="the `make demo` flow: simulate, replay, ask, score, report")
    d.add_argument("--out", default="out/demo")
    d.add_argument("--scenes", type=int, default=None)
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo, needs_ros=True)

    s = sub.add_parser("synthesize", help="RGB-D frames (simulator or a bag) -> spatial VQA dataset on disk "
                       "(Hugging Face datasets + parquet; docs/synthesis.md)")
    s.add_argument("--source", required=True, help="analytic | sim (pyrender) | a rosbag2 path | a scene-set folder")
    s.add_argument("--scenes", type=int, default=None, help="simulated scenes; bags/folders: frames (default all)")
    s.add_argument("--seed", type=int, default=0, help="template seed (and the simulator's, unless --scene-seed)")
    s.add_argument("--scene-seed", type=int, default=None, help="simulator seed when it differs from --seed")
    s.add_argument("--out", required=True, help="new output directory")
    s.add_argument("--engine", default="local", choices=["local", "ray"])
    s.add_argument("--workers", type=int, default=1, help="engine ray: CPUs of the embedded local Ray")
    s.add_argument("--address", default=None, help="engine ray: address of an existing Ray cluster")
    s.add_argument("--width", type=int, default=128, help="simulator: rendered width, px")
    s.add_argument("--height", type=int, default=96, help="simulator: rendered height, px")
    s.add_argument("--image-width", type=int, default=0, help="stored image width when smaller (0 = as rendered)")
    s.add_argument("--image-height", type=int, default=0)
    s.add_argument("--detector", default="auto", choices=["auto", "external", "boxes", "tabletop"],
                   help="bags: masks (external), 2D boxes or the tabletop backend; auto = what the bag has")
    s.add_argument("--min-confidence", type=float, default=0.95, help="ambiguity filter on relation confidence")
    s.add_argument("--kinds", nargs="+", default=None, choices=["yes_no", "choice", "metric", "describe"])
    s.add_argument("--max-per-frame", type=int, default=0, help="keep at most this many QA per frame (0 = all)")
    s.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=_cmd_synthesize)

    x = sub.add_parser("export-onnx", add_help=False,     # --help goes to the exporter's own parser
                       help="export a VLM to ONNX (--model ID_OR_DIR --out DIR; the family comes from its "
                       "config), or with --part detector|segmenter|depth a learned perception part "
                       "(see models/README.md)")
    x.add_argument("rest", nargs=argparse.REMAINDER)
    x.set_defaults(func=_cmd_export_onnx)
    for name, text in (
            ("finetune", "LoRA fine-tuning of an open VLM on a synthesized dataset (--config F [--resume]; "
                         "`finetune merge --adapter DIR --out DIR`; see docs/fine_tuning.md)"),
            ("train", "train the compact spatial VLM from scratch (--preset compact-cpu --out DIR [--seed S]; "
                      "see docs/compact_vlm.md)"),
            ("evaluate-vlm", "score a VLM on scenes of an unseen seed: What's Up caption ranking and distances "
                             "(--model DIR --seed S)")):
        f = sub.add_parser(name, add_help=False, help=text)   # --help goes to the command's own parser
        f.add_argument("rest", nargs=argparse.REMAINDER)
        f.set_defaults(func=_cmd_forwarded)
    from spatial_vlm_ros.perception.learned_cli import add_subcommands  # make-tiny-models, fetch-models
    add_subcommands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser()             # imports the package's core (numpy, open3d, ...)
    except ImportError as err:
        print(f"spatial_vlm: {err} (not the project's Python environment): run it through scripts/ros_env.sh "
              "(`scripts/ros_env.sh spatial_vlm ...`), which activates .venv and the workspace, after `make install`",
              file=sys.stderr)
        return 2
    args, extra = parser.parse_known_args(argv)
    if args.command in FORWARDED:       # the command parses its own options, in their original order
        args.rest = argv[argv.index(args.command) + 1:]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command = " ".join(c for c in (args.command, getattr(args, "bag_command", None)) if c)
    if getattr(args, "needs_ros", False):
        problem = ros_import_problem()
        if problem:
            print(f"spatial_vlm {command}: ROS 2 or this workspace's messages cannot be imported ({problem}); "
                  + ROS_HINT.format(command=command), file=sys.stderr)
            return 2
    from spatial_vlm_ros.core.errors import SpatialError
    try:
        return int(args.func(args) or 0)
    except (SpatialError, FileNotFoundError) as err:      # the command's own checks; a missing file
        print(f"spatial_vlm {command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

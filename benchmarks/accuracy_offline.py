"""Offline accuracy of the perception core on simulated RGB-D scenes (no ROS, no node).

Detectors (``--detector``): ``external`` (the simulator's instance masks), ``boxes`` (ground-truth 2D boxes
from those masks, ``sim.detections``, as ``Frame.detections`` and no masks: a good 2D detector; ``--jitter``
adds box noise) or ``tabletop`` (weight-free; its color-named objects are matched to the ground truth by 3D
center, ``evaluation.matching``). Every ground-truth object with a unique label is scored: a question about an
object the pipeline did not find counts as wrong, and the detector recall (objects found / present, at the
last frame of each scene) is printed.

Renders (once, cached under ``out/accuracy/``) tabletop scene sets with ``sim.dataset.generate_scenes``
(640x480, a few frames per scene from a moving camera, depth through a simulated sensor: ``--sensor stereo``
(default, D4xx-like), ``gaussian`` (what the node's noise model assumes) or ``tof``; ``all`` runs each in turn
and ends with a side-by-side table; the views are the same for every sensor), runs every frame through
``spatial_vlm_ros.pipeline.FramePipeline`` configured exactly as the node is (``config/perception.yaml`` through
``ros.parameters``, which is ROS-free, plus the evaluation's overrides), resets it between scenes like the
evaluation's ``~/reset``, and after the last frame of each scene asks every ground-truth relation and quantity
of that frame through ``core.spatial_queries.SpatialQueries`` (objects named by their unique labels, as the
evaluation does). Scoring is the evaluation's (``evaluation.scoring``): accuracy on unambiguous relations,
quantities within +-10 % / +-25 %, and the mean / median signed relative error (bias) per quantity, plus the
bias of the unary extents (width, depth, height) per object category.

    .venv/bin/python benchmarks/accuracy_offline.py                                  # tuning seeds 101-103
    .venv/bin/python benchmarks/accuracy_offline.py --seeds 201 202 203              # held-out check
    .venv/bin/python benchmarks/accuracy_offline.py --seeds 0 --scenes 16            # the demo's scenes
    .venv/bin/python benchmarks/accuracy_offline.py --set lifting.amodal=none        # a node parameter
    .venv/bin/python benchmarks/accuracy_offline.py --core L.rest_snap_m=0.0         # a core-only setting
    .venv/bin/python benchmarks/accuracy_offline.py --detector boxes                 # boxes only, no masks
    .venv/bin/python benchmarks/accuracy_offline.py --sensor all --seeds 101         # every sensor model
    .venv/bin/python benchmarks/accuracy_offline.py --sensor all --profile auto      # each sensor's own profile

``--profile`` overlays an uncertainty profile on ``--params`` (later file wins, as with several ROS
``--params-file``s): ``none`` (default: ``--params`` alone, the sensor-agnostic profile), ``auto`` (each sensor's
own ``config/sensors/<sensor>.yaml``, fitted by ``fit_uncertainty.py --write-profiles``) or a file's path (for
every sensor). See ``docs/uncertainty.md``.

Lengths are metres; relative errors are ``(predicted - truth) / truth``. Tune on one seed set and check on
another (the core's defaults were chosen on seeds 101-103 and checked on 201-203). Rendering a set of 15
scenes x 3 frames takes ~30 s once; evaluating it ~3 s.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spatial_vlm_ros.core.camera import CameraModel  # noqa: E402
from spatial_vlm_ros.core.errors import InputError  # noqa: E402
from spatial_vlm_ros.core.frame import Frame, Segmentation  # noqa: E402
from spatial_vlm_ros.core.spatial_queries import SpatialQueries  # noqa: E402
from spatial_vlm_ros.evaluation.baseline import DepthFrame, evaluate_baseline  # noqa: E402
from spatial_vlm_ros.evaluation.matching import match_objects  # noqa: E402
from spatial_vlm_ros.evaluation.records import QUANTITY, RELATION  # noqa: E402
from spatial_vlm_ros.evaluation.scoring import summarize  # noqa: E402
from spatial_vlm_ros.evaluation.truth_queries import NOT_FOUND, askable_objects, frame_queries, label_names  # noqa: E402
from spatial_vlm_ros.pipeline import FramePipeline  # noqa: E402
from spatial_vlm_ros.ros.parameters import NODE_NAME, load_parameter_file, pipeline_config, validate_values  # noqa: E402
from spatial_vlm_ros.sim.depth_sensors import DEFAULT_SENSOR, SENSORS, make_sensor  # noqa: E402
from spatial_vlm_ros.sim.detections import DetectionJitter, detections_from_mask  # noqa: E402

#: what the evaluation runner imposes on the node (``evaluation.runner.node_parameter_overrides``; the demo
#: also turns on motion compensation for multi-frame scenes)
EVALUATION_OVERRIDES = {"memory.timeout_s": 1e5, "memory.compensate_motion": True}
#: focal length (pixels) at which a sensor's sigma(z) is printed: 640 px wide, 64 deg horizontal field of view
#: (the middle of ``sim.trajectory.sample_intrinsics``' range)
TYPICAL_FOCAL_PX = 320.0 / math.tan(math.radians(32.0))


def dataset_path(cache: Path, seed: int, n_scenes: int, frames: int, sensor: str = DEFAULT_SENSOR) -> Path:
    """Cache folder of a scene set; the stereo default keeps the unsuffixed name."""
    suffix = "" if sensor == DEFAULT_SENSOR else f"_{sensor}"
    return cache / f"seed{seed}_n{n_scenes}_f{frames}{suffix}"


def _rendering(sensor_fields):
    """A sensor model's recorded fields without ``lifting`` (the node-side uncertainty terms a depth model
    carries: they do not change what is rendered)."""
    if isinstance(sensor_fields, dict):
        return {k: _rendering(v) for k, v in sensor_fields.items() if k != "lifting"}
    return sensor_fields


def ensure_dataset(cache: Path, seed: int, n_scenes: int, frames: int, sensor: str = DEFAULT_SENSOR) -> Path:
    """The cached scene set for (seed, scenes, frames, sensor), rendered first if missing (640x480). A cached
    set rendered by another sensor model, or with other parameters than today's, is re-rendered."""
    from spatial_vlm_ros.sim.dataset import GENERATOR_VERSION, generate_scenes
    path = dataset_path(cache, seed, n_scenes, frames, sensor)
    meta_path = path / "dataset.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        now = json.loads(json.dumps(asdict(make_sensor(sensor)), default=str))
        if meta.get("generator_version") != GENERATOR_VERSION:
            print(f"{path}: rendered by an older generator; re-rendering", flush=True)
        elif meta.get("sensor") == sensor and _rendering(meta.get("config", {}).get("sensor")) == _rendering(now):
            return path
        else:
            print(f"{path}: rendered with another {sensor} sensor model ({meta.get('sensor', 'unnamed')}); "
                  "re-rendering", flush=True)
    print(f"rendering {n_scenes} scenes x {frames} frames, seed {seed}, sensor {sensor} -> {path}", flush=True)
    generate_scenes(path, n_scenes=n_scenes, frames_per_scene=frames, noise=True, seed=seed, progress=True,
                    sensor=sensor)
    return path


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


#: the per-sensor uncertainty profiles (parameter overlays that set only ``uncertainty.*``), one per sensor model
SENSOR_PROFILES = ROOT / "config" / "sensors"
PROFILE_CHOICES = "none | auto | <path>"


def profile_path(profile: str | None, sensor: str) -> Path | None:
    """The parameter overlay ``--profile`` names for ``sensor``: None for ``none`` (the params file alone),
    ``config/sensors/<sensor>.yaml`` for ``auto``, else the given path (the same for every sensor). Raises
    ``InputError`` for a missing file."""
    if profile in (None, "", "none"):
        return None
    path = SENSOR_PROFILES / f"{sensor}.yaml" if profile == "auto" else Path(profile)
    if not path.is_file():
        raise InputError(f"--profile {profile}: no profile file {path}"
                         + (f" for sensor {sensor}" if profile == "auto" else ""))
    return path


def build_config(params_file: Path, overrides: dict, profile: Path | None = None):
    """``PipelineConfig`` as the node builds it from ``params_file`` (then the overlay ``profile``, if given:
    its values win, as a later ``--params-file`` does), with the evaluation's and the given node-parameter
    overrides. Raises ``InputError`` for unknown names or invalid values."""
    values = load_parameter_file(str(params_file), NODE_NAME)
    if profile is not None:
        values.update(load_parameter_file(str(profile), NODE_NAME))
    values.update(EVALUATION_OVERRIDES)
    values.update(overrides)
    return pipeline_config(validate_values(values))


def core_frame(f, detector: str = "external", jitter: DetectionJitter | None = None, seed: int = 0) -> Frame:
    """The pipeline's ``Frame`` for a dataset frame (16UC1 depth): with the simulator's instance mask for
    ``external``, with ground-truth 2D boxes from it (optionally jittered) and no mask for ``boxes``, with
    neither for ``tabletop``."""
    ci = f.camera_info
    camera = CameraModel.from_camera_info_fields(ci["width"], ci["height"], ci["k"], ci["d"],
                                                 ci.get("distortion_model", "plumb_bob"), ci.get("frame_id", ""))
    if detector == "boxes":
        boxes = detections_from_mask(f.mask, list(f.ids), list(f.labels), jitter=jitter, seed=seed)
        return Frame(f.rgb, f.depth_mm, "16UC1", camera, f.stamp, detections=boxes)
    if detector == "tabletop":
        return Frame(f.rgb, f.depth_mm, "16UC1", camera, f.stamp)
    seg = Segmentation(f.mask, list(f.ids), list(f.labels), [1.0] * len(f.ids))
    return Frame(f.rgb, f.depth_mm, "16UC1", camera, f.stamp, seg)


def node_names(gt: dict, names: dict[str, str], scene, detector: str) -> dict[str, str | None]:
    """GT label -> the name to ask the pipeline about (None: the object was not found). By label for
    ``external``/``boxes`` (labels unique per scene); by 3D-center matching for ``tabletop``."""
    if detector != "tabletop":
        found = {o.label for o in scene.objects}
        return {label: (label if label in found else None) for label in names.values()}
    objs = {oid: e for oid, e in askable_objects(gt).items() if oid in names and e.get("center") is not None}
    matches = match_objects(objs, {o.id: np.asarray(o.center) for o in scene.objects})
    by_gt = {m.gt_id: m.node_id for m in matches}
    return {label: by_gt.get(oid) for oid, label in names.items()}


def evaluate_dataset(path: Path, config, every_frame: bool = False, jitter: DetectionJitter | None = None,
                     recall: list | None = None):
    """Run the pipeline over every scene of ``path``; return the answered ``QueryRecord``s and the per-frame
    pipeline timings ``(total, detect)`` (ms). ``recall`` (a list) receives ``(found, present)`` per asked frame."""
    from spatial_vlm_ros.sim.dataset import iter_dataset
    pipeline = FramePipeline(config)
    queries = SpatialQueries(pipeline.memory, config.noise)
    records, frame_ms = [], []
    for n_scene, record in enumerate(iter_dataset(path)):
        pipeline.reset()                                    # the evaluation's ~/reset between scenes
        for i, f in enumerate(record.frames):
            try:
                result = pipeline.process(core_frame(f, config.detector, jitter, seed=1000 * n_scene + i))
                frame_ms.append((result.timings_ms["total"], result.timings_ms["detect"]))
            except InputError as err:                  # the node skips such a frame (memory untouched)
                print(f"  {record.scene_id} frame {i}: {err}")
            if not (every_frame or i == len(record.frames) - 1):
                continue
            gt = f.ground_truth
            names = label_names(askable_objects(gt))
            asked = node_names(gt, names, pipeline.memory.snapshot(), config.detector)
            if recall is not None:
                recall.append((sum(v is not None for v in asked.values()), len(asked)))
            recs, _ = frame_queries(gt, names)
            for r in recs:
                subject, reference = asked.get(r.subject), asked.get(r.reference) if r.reference else ""
                if subject is None or reference is None:
                    r.success, r.message, r.predicted = False, NOT_FOUND, None   # counts as wrong
                    continue
                if r.kind == RELATION:
                    a = queries.get_relation(subject, r.relation_or_quantity, reference)
                    r.success, r.message = a.success, a.message
                    r.predicted = bool(a.holds) if a.success else None
                    r.confidence = a.confidence
                else:
                    a = queries.measure(r.relation_or_quantity, subject, reference)
                    r.success, r.message = a.success, a.message
                    r.predicted = float(a.value) if a.success else None
                    r.uncertainty = a.uncertainty
            records += recs
    return records, frame_ms


COVERAGE_TARGET, COVERAGE_TOLERANCE = 0.95, 0.02      # issue 9: 2-sigma coverage 0.95 +- 0.02 per cell


def _pct(v) -> str:
    return "  n/a" if v is None or not math.isfinite(v) else f"{100 * v:5.1f}"


def signed_errors(records, quantity: str, min_truth: float = 0.02) -> list[float]:
    """``(predicted - truth) / truth`` of the answered ``quantity`` records with a truth of at least
    ``min_truth`` metres."""
    return [(float(r.predicted) - float(r.truth)) / float(r.truth) for r in records
            if r.kind == QUANTITY and r.relation_or_quantity == quantity and r.answered
            and float(r.truth) >= min_truth]


def print_report(records, label: str) -> dict:
    """Print accuracy per relation, success rates and bias per quantity, extent bias per category; return the
    ``evaluation.scoring.summarize`` summary."""
    s = summarize(records)
    rel, qty = s["relations"], s["quantities"]
    print(f"\n=== {label}: {rel['overall']['n_scored']} unambiguous relations, "
          f"{qty['overall']['n_scored']} quantities")
    cal = rel["overall"]["calibration"]
    print(f"relations overall {_pct(rel['overall']['accuracy'])} %  (failed calls {rel['overall']['n_failed']}, "
          f"ambiguous {rel['overall']['n_ambiguous']}); confidence: ECE {cal['ece']:.4f}, wrong at >= "
          f"{cal['high_threshold']:.2f}: {cal['wrong_high']}/{cal['n_high']} ({_pct(cal['wrong_high_fraction'])} %)")
    print("reliability (confidence bin: answers, mean confidence -> accuracy): " + "; ".join(
        f"[{b['lo']:.1f}, {b['hi']:.1f}) {b['n']}, {b['mean_confidence']:.3f} -> {b['accuracy']:.3f}"
        for b in cal["table"]))
    print(f"{'relation':<22}{'n':>6}{'acc %':>8}{'false yes':>11}{'false no':>10}")
    for name, b in rel["per_relation"].items():
        c = b["confusion"]
        print(f"{name:<22}{b['n_scored']:>6}{_pct(b['accuracy']):>8}{c['false_yes']:>11}{c['false_no']:>10}")
    print(f"{'quantity':<22}{'n':>6}{'+-10%':>8}{'+-25%':>8}{'bias mean':>11}{'bias med':>10}{'|rel| p50':>11}"
          f"{'2-sigma':>9}")
    for name, b in qty["per_quantity"].items():
        se = signed_errors(records, name, qty["min_truth_m"])
        med = float(np.median(se)) if se else math.nan
        print(f"{name:<22}{b['n_scored']:>6}{_pct(b['within_10pct']):>8}{_pct(b['within_25pct']):>8}"
              f"{_pct(b['mean_signed_rel_error']):>11}{_pct(med):>10}{_pct(b['rel_error']['p50']):>11}"
              f"{_pct(b['coverage_2sigma']['coverage']):>9}")
    o = qty["overall"]
    print(f"{'(all quantities)':<22}{o['n_scored']:>6}{_pct(o['within_10pct']):>8}{_pct(o['within_25pct']):>8}"
          f"{'':>32}{_pct(o['coverage_2sigma']['coverage']):>9}")
    by_cat: dict = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.kind == QUANTITY and r.relation_or_quantity in ("width", "depth", "height") and r.answered \
                and float(r.truth) > 0:
            err = (float(r.predicted) - float(r.truth)) / float(r.truth)
            by_cat[r.subject][r.relation_or_quantity].append(err)
    print("mean signed relative error of the extents per category, % (n):")
    for cat in sorted(by_cat):
        cells = "  ".join(f"{q} {_pct(float(np.mean(v))):>6} ({len(v)})" for q, v in sorted(by_cat[cat].items()))
        print(f"  {cat:<14}{cells}")
    return s


CORE_GROUPS = {"L": "lifting", "G": "gravity"}


def apply_core_overrides(config, items: list[str]) -> dict:
    """Set ``L.<field>=<value>`` (LiftingParams) / ``G.<field>=<value>`` (GravityParams) on ``config``, for
    core settings that are not node parameters. Returns them as ``{"L.field": value}``."""
    done = {}
    for item in items:
        name, _, value = item.partition("=")
        group, _, field_name = name.strip().partition(".")
        if group not in CORE_GROUPS or not field_name:
            raise InputError(f"--core {item!r}: expected L.<field>=<value> or G.<field>=<value>")
        v = parse_value(value)
        v = tuple(v) if isinstance(v, list) else v
        attr = CORE_GROUPS[group]
        try:
            setattr(config, attr, replace(getattr(config, attr), **{field_name: v}))
        except TypeError as err:
            raise InputError(f"--core {item!r}: {err}") from None
        done[f"{group}.{field_name}"] = v
    return done


def set_scene(path: Path, records: list) -> list:
    """Name each record's scene after its scene set too: sets of other seeds reuse the stamps and ids, and
    the scoring merges the askings of one fact by (scene, stamp, objects)."""
    for r in records:
        r.scene = f"{path.name}/{r.scene}"
    return records


def baseline_summary(args, sensor: str) -> dict:
    """The naive baseline (``evaluation.baseline``: median point per ground-truth mask, camera up) on the last
    frame of every scene, asked the same questions; prints its overall line and returns its summary."""
    from spatial_vlm_ros.sim.dataset import iter_dataset
    records = []
    for seed in args.seeds:
        path = ensure_dataset(args.cache, seed, args.scenes, args.frames, sensor)
        records += set_scene(path, evaluate_baseline((DepthFrame.from_dataset(r.frames[-1])
                                                      for r in iter_dataset(path)), unique_labels=True))
    s = summarize(records)
    rel, qty = s["relations"]["overall"], s["quantities"]["overall"]
    dist = s["quantities"]["per_quantity"].get("distance", {}).get("within_10pct", math.nan)
    print(f"naive baseline (median point per mask, camera up), sensor {sensor}: relations {_pct(rel['accuracy'])} %"
          f" of {rel['n_scored']}, distances within +-10 % {_pct(dist)} %, quantities {_pct(qty['within_10pct'])} %")
    return s


def run_sensor(args, sensor: str, config, jitter, overrides: dict) -> dict:
    """Evaluate every seed's scene set rendered with ``sensor``; print the report; return its summary (with
    ``sensor`` and ``detector_recall``)."""
    all_records, t0, ms, recall = [], time.monotonic(), [], []
    model, f_px = make_sensor(sensor).depth_model(TYPICAL_FOCAL_PX), TYPICAL_FOCAL_PX
    print(f"\nsensor {sensor}: its sigma(z) at f = {f_px:.0f} px is sigma0 {model.sigma0:.4f} m + k {model.k:.4f} z^2; "
          f"the node is configured with sigma0 {config.noise.sigma0:.4f} m + k {config.noise.k:.4f} z^2")
    profile = profile_path(getattr(args, "profile", None), sensor)
    print(f"uncertainty profile: {profile.relative_to(ROOT) if profile and profile.is_relative_to(ROOT) else profile}"
          if profile else f"uncertainty profile: {args.params.name} (sensor-agnostic)")
    for seed in args.seeds:
        path = ensure_dataset(args.cache, seed, args.scenes, args.frames, sensor)
        t = time.monotonic()
        records, frame_ms = evaluate_dataset(path, config, args.every_frame, jitter, recall)
        set_scene(path, records)
        ms += frame_ms
        print(f"seed {seed} ({sensor}): {len(records)} queries in {time.monotonic() - t:.1f} s")
        all_records += records
    summary = print_report(all_records, f"sensor {sensor}, seeds {' '.join(map(str, args.seeds))}"
                           + (f", overrides {overrides}" if overrides else ""))
    if args.baseline:
        summary["baseline"] = baseline_summary(args, sensor)
    found, present = (sum(v) for v in zip(*recall)) if recall else (0, 0)
    summary["sensor"] = sensor
    summary["profile"] = str(profile) if profile else None
    summary["detector_recall"] = found / present if present else math.nan
    print(f"detector {args.detector}: recall {found}/{present} = {_pct(summary['detector_recall'])} % "
          "(ground-truth objects found / present at the asked frames; missed objects' questions count wrong)")
    total, detect = np.array(ms).reshape(-1, 2).T
    print(f"\npipeline per frame: p50 {np.percentile(total, 50):.1f} ms, p95 {np.percentile(total, 95):.1f} ms, "
          f"p99 {np.percentile(total, 99):.1f} ms ({len(total)} frames), of which detect p50 "
          f"{np.percentile(detect, 50):.1f} ms; wall {time.monotonic() - t0:.1f} s")
    return summary


def _row(name: str, s: dict, recall: float | None) -> str:
    rel, qty = s["relations"]["overall"], s["quantities"]["overall"]
    dist = s["quantities"]["per_quantity"].get("distance", {}).get("within_10pct", math.nan)
    cal, cov = rel["calibration"], qty["coverage_2sigma"]["coverage"]
    ece = "     -" if not math.isfinite(cal["ece"]) or not cal["n"] else f"{cal['ece']:6.3f}"
    return (f"{name:<20}{_pct(rel['accuracy']):>10}{rel['n_scored']:>7}{_pct(dist):>10}{_pct(qty['within_10pct']):>11}"
            f"{qty['n_scored']:>6}{_pct(cov):>9}{ece:>8}{_pct(cal['wrong_high_fraction']):>10}"
            f"{_pct(recall) if recall is not None else '    -':>8}")


def print_side_by_side(summaries: dict[str, dict], seeds: list[int]) -> None:
    """One row per sensor (and its naive baseline): relations correct, distances and all quantities within
    +-10 %, 2-sigma coverage, ECE and wrong answers at confidence >= 0.99, detector recall (%)."""
    profiles = {s.get("profile") for s in summaries.values()}
    print(f"\n=== sensors side by side, seeds {' '.join(map(str, seeds))} (each fact once"
          + ("" if profiles == {None} else ", per-sensor uncertainty profiles") + ")")
    print(f"{'sensor':<20}{'relations':>10}{'n':>7}{'dist 10%':>10}{'qty +-10%':>11}{'n':>6}{'2-sigma':>9}"
          f"{'ECE':>8}{'wrong@.99':>10}{'recall':>8}")
    for sensor, s in summaries.items():
        print(_row(sensor, s, s["detector_recall"]))
        if s.get("baseline"):
            print(_row("  naive baseline", s["baseline"], None))
    names = sorted({q for s in summaries.values() for q in s["quantities"]["per_quantity"]})
    print("2-sigma coverage per quantity, % [scene-bootstrap 95 % interval]:")
    print(f"{'quantity':<22}" + "".join(f"{sensor:>22}" for sensor in summaries))
    cells = within_target = consistent = 0
    for name in names:
        row = ""
        for s in summaries.values():
            cov = s["quantities"]["per_quantity"].get(name, {}).get("coverage_2sigma", {})
            value, (lo, hi) = cov.get("coverage", math.nan), cov.get("interval_95", (math.nan, math.nan))
            row += f"{_pct(value):>8} [{_pct(lo)}, {_pct(hi)}]"
            if math.isfinite(value):
                cells += 1
                within_target += abs(value - COVERAGE_TARGET) <= COVERAGE_TOLERANCE + 1e-9   # 0.97 is within
                consistent += lo <= COVERAGE_TARGET <= hi
        print(f"{name:<22}{row}")
    print(f"cells within {100 * COVERAGE_TARGET:.0f} +- {100 * COVERAGE_TOLERANCE:.0f} %: {within_target} of {cells}; "
          f"cells whose interval holds {100 * COVERAGE_TARGET:.0f} % (coverage consistent with calibrated "
          f"sigmas at this sample size): {consistent} of {cells}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    ap.add_argument("--scenes", type=int, default=15, help="scenes per seed")
    ap.add_argument("--frames", type=int, default=3, help="frames per scene (camera moving, 30 Hz)")
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "accuracy")
    ap.add_argument("--params", type=Path, default=ROOT / "config" / "perception.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="node parameter override, e.g. lifting.amodal=none (JSON values)")
    ap.add_argument("--core", action="append", default=[], metavar="L.FIELD=VALUE",
                    help="LiftingParams (L.) or GravityParams (G.) field that is not a node parameter, "
                         "e.g. G.motion_sigma_deg=0.5")
    ap.add_argument("--every-frame", action="store_true", help="ask after every frame, not only the last")
    ap.add_argument("--detector", choices=("external", "boxes", "tabletop"), default="external",
                    help="instance source: ground-truth masks, ground-truth 2D boxes only, or tabletop")
    ap.add_argument("--jitter", type=float, default=0.0, metavar="PX",
                    help="boxes: one-sigma noise of each box edge, pixels (score noise 0.05); 0 = tight boxes")
    ap.add_argument("--sensor", choices=(*SENSORS, "all"), default=DEFAULT_SENSOR,
                    help="simulated depth sensor of the rendered sets; all = each in turn, then a table")
    ap.add_argument("--profile", default="none", metavar="PROFILE",
                    help=f"uncertainty profile overlaid on --params ({PROFILE_CHOICES}): none = --params alone "
                         "(sensor-agnostic, default), auto = config/sensors/<sensor>.yaml per sensor")
    ap.add_argument("--json", type=Path, help="write the summary here (with --sensor all: one per sensor)")
    ap.add_argument("--no-baseline", dest="baseline", action="store_false",
                    help="skip the naive baseline (median point per mask, camera up) row")
    args = ap.parse_args(argv)
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        overrides[name.strip()] = parse_value(value)
    overrides["detector"] = args.detector
    jitter = DetectionJitter(edge_sigma_px=args.jitter) if args.jitter > 0 else None
    sensors = list(SENSORS) if args.sensor == "all" else [args.sensor]
    configs, core = {}, {}
    try:
        for sensor in sensors:
            configs[sensor] = build_config(args.params, overrides, profile_path(args.profile, sensor))
            core = apply_core_overrides(configs[sensor], args.core)
    except InputError as err:
        print(f"accuracy_offline: {err}", file=sys.stderr)
        return 2
    overrides.update(core)
    summaries = {}
    for sensor in sensors:
        summaries[sensor] = run_sensor(args, sensor, configs[sensor], jitter, overrides)
    print_side_by_side(summaries, args.seeds)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        run = {"seeds": args.seeds, "scenes": args.scenes, "frames": args.frames, "overrides": overrides,
               "profile": args.profile}
        for s in summaries.values():
            s["run"] = run
        out = summaries[sensors[0]] if len(sensors) == 1 else summaries
        args.json.write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())

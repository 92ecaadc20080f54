"""Fit the lifting-error terms of the uncertainty model (``core.uncertainty.LiftingError``) from the simulator's
residuals, and check the coverage and calibration they give.

The sensor term of an object's uncertainty (per-pixel noise over the object's pixels, ``DepthNoiseModel``)
leaves out what the lifting itself gets wrong (amodal completion, erosion, lost edges, flying pixels, a biased
support plane). This script runs the pipeline, configured as the node is (``config/perception.yaml`` + the
evaluation's overrides), over cached simulated scene sets (``accuracy_offline.ensure_dataset``), matches each
tracked object of the last frame of a scene to its ground truth by label and collects

- the center error along the viewing ray, across it horizontally and across it in the vertical plane, with
  the sensor's center sigma and the object's footprint (larger horizontal extent);
- the extent error per gravity axis (width, depth, height), with the sensor's extent sigma and the extent.

Each term ``floor + fraction * size`` is fitted by maximum likelihood of the errors under
``N(0, sigma_sensor^2 + term^2)`` and then scaled so that 95 % of the tuning errors lie within 2 sigma. Last,
``relation_sigma_scale`` is the scale of the relations' margin sigmas with the smallest expected calibration
error of their confidences (answers at >= 0.99 confidence wrong at most 0.5 %), each fact once, and
``quantity_sigma_scale`` the factor per quantity that puts 95 % of its errors within 2 sigma for each sensor
(the largest of the sensors' factors; each fact once).
``--check`` only reports what the configured model gets (run it on held-out seeds); ``--profile auto`` checks
each sensor with its own profile (``config/sensors/<sensor>.yaml`` over ``--params``, as
``accuracy_offline.py --profile``).

``--write-profiles DIR`` fits the per-sensor profiles instead: the configured lifting terms and relation scale
(the sensor-agnostic ones of ``--params``) are kept, and ``quantity_sigma_scale`` is fitted for each sensor
alone (the 95th percentile of ``|error| / (2 sigma)`` of its tuning facts, rounded up to 0.01), written as
``DIR/<sensor>.yaml``: a parameter overlay for the node that sets only ``uncertainty.*``.

    .venv/bin/python benchmarks/fit_uncertainty.py --sensor stereo gaussian tof --seeds 101 102 103   # fit
    .venv/bin/python benchmarks/fit_uncertainty.py --sensor stereo --seeds 201 202 203 --check         # check
    .venv/bin/python benchmarks/fit_uncertainty.py --sensor stereo gaussian tof --seeds 101 102 103 \
        --write-profiles config/sensors                                                               # profiles
    .venv/bin/python benchmarks/fit_uncertainty.py --sensor stereo gaussian tof --seeds 201 202 203 \
        --check --profile auto                                                                        # check them

Lengths are metres.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import accuracy_offline as acc  # noqa: E402

from spatial_vlm_ros.core.errors import InputError  # noqa: E402
from spatial_vlm_ros.core.quantities import center_sigma, extent_sigma, footprint, unit  # noqa: E402
from spatial_vlm_ros.core.uncertainty import LiftingError, ray_basis  # noqa: E402
from spatial_vlm_ros.evaluation.calibration import HIGH_CONFIDENCE, reliability  # noqa: E402
from spatial_vlm_ros.evaluation.facts import merge_facts  # noqa: E402
from spatial_vlm_ros.evaluation.truth_queries import askable_objects, label_names  # noqa: E402
from spatial_vlm_ros.pipeline import FramePipeline  # noqa: E402

COVERAGE = 0.95
MAX_WRONG_AT_099 = 0.005
TERMS = ("ray", "across", "vertical", "width", "depth", "height")      # residual kinds, one fitted term each


def collect(path: Path, config) -> list[tuple]:
    """Per-object residuals ``(term, error, sensor sigma, size)`` of the last frame of every scene of ``path``."""
    from spatial_vlm_ros.sim.dataset import iter_dataset
    pipeline = FramePipeline(config)
    rows = []
    for record in iter_dataset(path):
        pipeline.reset()
        for f in record.frames:
            with contextlib.suppress(InputError):
                pipeline.process(acc.core_frame(f, "external"))
        gt = record.frames[-1].ground_truth
        names = label_names(askable_objects(gt))
        truth = {e["label"]: e for oid, e in askable_objects(gt).items() if oid in names}
        scene = pipeline.memory.snapshot()
        for obj in scene.objects:
            e = truth.get(obj.label)
            if e is None:
                continue
            err = np.asarray(obj.center, float) - np.asarray(e["center"], float)
            basis = ray_basis(unit(obj.center), scene.gravity.up)
            sc, fp = center_sigma(obj, config.noise, lifting=False), footprint(obj)
            rows += [(term, float(err @ e), sc, fp) for term, e in zip(("ray", "across", "vertical"), basis)]
            for axis, term in enumerate(("width", "depth", "height")):
                rows.append((term, float(obj.size[axis] - e["size"][axis]),
                             extent_sigma(obj, config.noise, axis, lifting=False), float(obj.size[axis])))
    return rows


def fit_term(e: np.ndarray, s: np.ndarray, size: np.ndarray) -> tuple[float, float]:
    """(floor, fraction) of ``floor + fraction * size``: maximum likelihood, then scaled for 95 % coverage."""
    def nll(theta):
        var = s ** 2 + (abs(theta[0]) + abs(theta[1]) * size) ** 2
        return float(np.sum(0.5 * np.log(var) + 0.5 * e ** 2 / var))

    a, b = np.abs(minimize(nll, [0.003, 0.05], method="Nelder-Mead",
                           options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-9}).x)
    lo, hi = 0.0, 20.0
    for _ in range(60):                   # smallest scale reaching the target coverage (coverage is monotone)
        mid = 0.5 * (lo + hi)
        covered = np.mean(np.abs(e) <= 2.0 * np.hypot(s, mid * (a + b * size)))
        lo, hi = (mid, hi) if covered < COVERAGE else (lo, mid)
    return round(float(hi * a), 4), round(float(hi * b), 4)


def term_sigma(model: LiftingError, term: str, size: np.ndarray) -> np.ndarray:
    if term in ("ray", "across", "vertical"):
        return getattr(model, f"center_{term}_m") + getattr(model, f"center_{term}_size_fraction") * size
    axis = ("width", "depth", "height").index(term)
    return model.extent_floor_m[axis] + model.extent_fraction[axis] * size


def report_terms(rows: list[tuple], model: LiftingError) -> None:
    """Per term: residual size and 2-sigma coverage of the sensor term alone and with ``model``."""
    for term in TERMS:
        r = [x for x in rows if x[0] == term]
        e, s, size = (np.array([x[i] for x in r]) for i in (1, 2, 3))
        total = np.hypot(s, term_sigma(model, term, size))
        print(f"  {term:<8} n {len(e):4d}  |error| p50 {1e3 * np.median(np.abs(e)):5.1f} mm  p95 "
              f"{1e3 * np.percentile(np.abs(e), 95):5.1f} mm  bias {1e3 * np.mean(e):+5.1f} mm  2-sigma coverage: "
              f"sensor term {np.mean(np.abs(e) <= 2 * s):.3f}, model {np.mean(np.abs(e) <= 2 * total):.3f}")


def fit_model(rows: list[tuple]) -> LiftingError:
    fits = {}
    for term in TERMS:
        r = [x for x in rows if x[0] == term]
        fits[term] = fit_term(*(np.array([x[i] for x in r]) for i in (1, 2, 3)))
    ext = [fits[t] for t in ("width", "depth", "height")]
    center = {f"center_{t}_m": fits[t][0] for t in ("ray", "across", "vertical")}
    center.update({f"center_{t}_size_fraction": fits[t][1] for t in ("ray", "across", "vertical")})
    return LiftingError(**center, extent_floor_m=tuple(a for a, _ in ext), extent_fraction=tuple(b for _, b in ext))


def answer_records(paths: dict[Path, str], config) -> dict[str, list]:
    """The ``QueryRecord``s (relations and quantities) of every scene set in ``paths`` (set -> its sensor),
    per sensor; ``config`` is one configuration or one per sensor (a dict)."""
    records: dict[str, list] = {}
    for path, sensor in paths.items():
        recs, _ = acc.evaluate_dataset(path, config[sensor] if isinstance(config, dict) else config)
        records.setdefault(sensor, []).extend(acc.set_scene(path, recs))
    return records


def quantity_facts(records: list) -> dict[str, list]:
    """Quantity facts (each once) with an uncertainty, per quantity name."""
    by_name: dict[str, list] = {}
    for f in merge_facts([r for r in records if r.kind == "quantity"]):
        if f.answered and f.truth is not None and f.uncertainty is not None and f.uncertainty > 0:
            by_name.setdefault(f.name, []).append(f)
    return by_name


def sensor_quantity_scales(records: list) -> dict[str, float]:
    """Per quantity, the factor on the whole sigma that puts 95 % of the errors of ``records`` (one sensor's)
    within 2 sigma: the 95th percentile of ``|error| / (2 sigma)``, rounded up to 0.01."""
    out = {}
    for name, facts in quantity_facts(records).items():
        ratio = [abs(float(f.predicted) - float(f.truth)) / (2.0 * float(f.uncertainty)) for f in facts]
        out[name] = float(np.ceil(100.0 * np.quantile(ratio, COVERAGE)) / 100.0)
    return dict(sorted(out.items()))


def fit_quantity_scales(records: dict[str, list]) -> dict[str, float]:
    """Per quantity, the factor on the whole sigma that puts 95 % of its tuning errors within 2 sigma for every
    sensor (the largest over the sensors of ``sensor_quantity_scales``): the node does not know its sensor, so
    its sigmas must hold for each."""
    out: dict[str, float] = {}
    for recs in records.values():
        for name, scale in sensor_quantity_scales(recs).items():
            out[name] = max(out.get(name, 0.0), scale)
    return dict(sorted(out.items()))


def _yaml_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    return repr(float(value))          # always with a decimal point: ROS types 1 as an integer


def profile_text(sensor: str, values: dict, scales: dict[str, float], seeds: list[int], sensors: list[str],
                 params: Path) -> str:
    """The per-sensor profile file: every ``uncertainty.*`` parameter of ``values`` (validated node values)
    with ``scales`` as its ``quantity_sigma_scale``, under the node's wildcard key."""
    prefix, qprefix = "uncertainty.", "uncertainty.quantity_sigma_scale."
    terms = {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix) and not k.startswith(qprefix)}
    missing = sorted(k[len(qprefix):] for k in values if k.startswith(qprefix) and k[len(qprefix):] not in scales)
    if missing:
        raise SystemExit(f"fit_uncertainty: no {sensor} tuning facts for {', '.join(missing)}; cannot write a profile")
    lines = [
        f"# Uncertainty profile for the '{sensor}' depth sensor model (docs/sensor_models.md, docs/uncertainty.md):",
        "# a parameter overlay for the spatial_perception node that sets only uncertainty.*. Load it after the",
        "# main parameter file (a later --params-file wins):",
        "#   ros2 run spatial_vlm_ros perception_node --ros-args --params-file config/perception.yaml \\",
        f"#       --params-file config/sensors/{sensor}.yaml",
        f"#   benchmarks/accuracy_offline.py --sensor {sensor} --profile auto",
        f"# Written by benchmarks/fit_uncertainty.py --sensor {' '.join(sensors)} --seeds "
        f"{' '.join(map(str, seeds))} --write-profiles:",
        f"# the lifting terms and relation scale are those of {params.name} (sensor-agnostic; relations are",
        "# unchanged), the per-quantity scales are fitted on this sensor's tuning facts alone.",
        "/**/spatial_perception:",
        "  ros__parameters:",
        "    uncertainty:",
    ]
    lines += [f"      {k}: {_yaml_value(v)}" for k, v in terms.items()]
    lines.append("      quantity_sigma_scale:            # fitted for this sensor")
    lines += [f"        {k}: {scales[k]:.2f}" for k in sorted(scales)]
    return "\n".join(lines) + "\n"


def write_profiles(out_dir: Path, params: Path, by_sensor: dict[str, list], seeds: list[int]) -> dict:
    """Fit ``quantity_sigma_scale`` per sensor on ``by_sensor`` (answered with every scale 1) and write
    ``out_dir/<sensor>.yaml``; return ``{sensor: scales}``."""
    from spatial_vlm_ros.ros.parameters import NODE_NAME, load_parameter_file, validate_values
    values = validate_values(load_parameter_file(str(params), NODE_NAME))
    out_dir.mkdir(parents=True, exist_ok=True)
    fitted = {}
    for sensor, recs in by_sensor.items():
        fitted[sensor] = sensor_quantity_scales(recs)
        path = out_dir / f"{sensor}.yaml"
        path.write_text(profile_text(sensor, values, fitted[sensor], seeds, list(by_sensor), params))
        print(f"{sensor}: quantity_sigma_scale {fitted[sensor]} -> {path}")
    return fitted


def report_quantities(records: dict[str, list]) -> None:
    for sensor, recs in records.items():
        for name, facts in sorted(quantity_facts(recs).items()):
            covered = np.mean([abs(float(f.predicted) - float(f.truth)) <= 2.0 * float(f.uncertainty)
                               for f in facts])
            print(f"  {sensor:<9}{name:<20} n {len(facts):5d}  2-sigma coverage {covered:.3f}")


def calibration(records: list, scale: float) -> dict:
    """Reliability of the relation facts with their margin sigmas scaled by ``scale`` (relative to the scale
    the records were answered with): ``Phi(|m| / s)`` becomes ``Phi(|m| / (scale s))``, computed from the
    answered confidence through the normal quantile."""
    from scipy.stats import norm
    out = []
    for r in records:
        if r.confidence is not None and r.answered:
            z = norm.ppf(min(max(r.confidence, 0.5), 1 - 1e-16))
            r = replace(r, confidence=float(norm.cdf(z / scale)))
        out.append(r)
    return reliability([f for f in merge_facts(out)])


def fit_relation_scale(records: list) -> float:
    """The scale with the smallest ECE among those keeping wrong answers at >= 0.99 within the limit."""
    best = None
    for scale in np.round(np.arange(0.30, 1.51, 0.05), 2):
        rel = calibration(records, float(scale))
        ok = rel["wrong_high_fraction"] <= MAX_WRONG_AT_099
        if ok and (best is None or rel["ece"] < best[1]):
            best = (float(scale), rel["ece"])
    return best[0] if best else 1.0


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    ap.add_argument("--scenes", type=int, default=15)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--sensor", nargs="+", default=["stereo"], help="sensor models (several: one pooled fit)")
    ap.add_argument("--cache", type=Path, default=HERE.parent / "out" / "accuracy")
    ap.add_argument("--params", type=Path, default=HERE.parent / "config" / "perception.yaml")
    ap.add_argument("--check", action="store_true", help="only report the configured model's coverage")
    ap.add_argument("--profile", default="none", metavar="PROFILE",
                    help=f"with --check: uncertainty profile over --params ({acc.PROFILE_CHOICES}; auto = "
                         "config/sensors/<sensor>.yaml per sensor)")
    ap.add_argument("--write-profiles", type=Path, metavar="DIR",
                    help="fit quantity_sigma_scale per sensor (lifting terms and relation scale of --params "
                         "kept) and write DIR/<sensor>.yaml")
    ap.add_argument("--json", type=Path, help="write the fitted terms here")
    args = ap.parse_args(argv)
    if args.profile != "none" and not args.check:
        ap.error("--profile applies to --check (a fit starts from --params)")
    if args.write_profiles and args.check:
        ap.error("--write-profiles fits; it does not go with --check")
    return args


def fit_profiles(args, config, paths: dict[Path, str]) -> int:
    """``--write-profiles``: the configured lifting terms and relation scale kept, ``quantity_sigma_scale``
    fitted per sensor and written."""
    base = replace(config.noise.lifting, quantity_sigma_scale=())
    config = replace(config, noise=replace(config.noise, lifting=base))
    config.lifting = replace(config.lifting, noise=config.noise)
    print(f"configured lifting terms kept: {base}")
    by_sensor = answer_records(paths, config)
    print("quantities, 2-sigma coverage (per-quantity scales 1):")
    report_quantities(by_sensor)
    write_profiles(args.write_profiles, args.params, by_sensor, args.seeds)
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config = acc.build_config(args.params, {"detector": "external"})
        configs = {sensor: acc.build_config(args.params, {"detector": "external"},
                                            acc.profile_path(args.profile, sensor)) for sensor in args.sensor}
    except InputError as err:
        print(f"fit_uncertainty: {err}", file=sys.stderr)
        return 2
    paths = {acc.ensure_dataset(args.cache, seed, args.scenes, args.frames, sensor=sensor): sensor
             for sensor in args.sensor for seed in args.seeds}
    print(f"sensors {' '.join(args.sensor)}, seeds {' '.join(map(str, args.seeds))}")
    if args.write_profiles:
        return fit_profiles(args, config, paths)
    rows = [row for path in paths for row in collect(path, config)]
    print(f"configured: {config.noise.lifting}")
    if args.profile != "none":
        for sensor, c in configs.items():
            print(f"  {sensor} profile {acc.profile_path(args.profile, sensor)}: quantity_sigma_scale "
                  f"{dict(c.noise.lifting.quantity_sigma_scale)}")
    report_terms(rows, config.noise.lifting)
    model = config.noise.lifting
    if not args.check:
        model = fit_model(rows)
        print(f"fitted lifting terms (scaled for {COVERAGE:.0%} 2-sigma coverage each):")
        report_terms(rows, model)
        config = replace(config, noise=replace(config.noise, lifting=replace(model, relation_sigma_scale=1.0,
                                                                               quantity_sigma_scale=())))
        config.lifting = replace(config.lifting, noise=config.noise)
    by_sensor = answer_records(paths, configs if args.check else config)
    print("quantities, 2-sigma coverage" + (" (per-quantity scales 1):" if not args.check else ":"))
    report_quantities(by_sensor)
    records = [r for recs in by_sensor.values() for r in recs if r.kind == "relation"]
    if not args.check:
        model = replace(model, relation_sigma_scale=fit_relation_scale(records),
                        quantity_sigma_scale=fit_quantity_scales(by_sensor))
        print(f"fitted: {model}")
    scales = [("as answered", 1.0)] + ([] if args.check else [("fitted scale", model.relation_sigma_scale)])
    for label, factor in scales:
        rel = calibration(records, factor)
        print(f"relations ({label}): {rel['n']} facts, ECE {rel['ece']:.4f}, wrong at >= {HIGH_CONFIDENCE}: "
              f"{rel['wrong_high']}/{rel['n_high']}; bins " + "; ".join(
                  f"[{b['lo']:.1f},{b['hi']:.1f}) {b['n']} {b['mean_confidence']:.3f}->{b['accuracy']:.3f}"
                  for b in rel["table"]))
    if args.json and not args.check:
        args.json.write_text(json.dumps({"sensors": args.sensor, "seeds": args.seeds, **asdict(model)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

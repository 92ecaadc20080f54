"""The per-sensor uncertainty profiles (``config/sensors/<sensor>.yaml``, docs/uncertainty.md): each is a valid
parameter file for the perception node that sets only ``uncertainty.*``, overlays ``config/perception.yaml``
(the later file wins, in our reader and in rcl) and changes only the per-quantity sigma scales."""
import importlib.util
from pathlib import Path

import pytest

from spatial_vlm_ros.core.quantities import QUANTITIES
from spatial_vlm_ros.ros import parameters as P
from spatial_vlm_ros.sim.depth_sensors import SENSORS

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config" / "perception.yaml"
PROFILES = ROOT / "config" / "sensors"
QUANTITY_KEYS = {f"{P.QUANTITY_SCALE}.{name}" for name in QUANTITIES}


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _accuracy_offline():
    return _benchmark("accuracy_offline")


def test_every_sensor_model_has_a_profile_and_nothing_else_is_there():
    assert {p.stem for p in PROFILES.glob("*.yaml")} == set(SENSORS)


@pytest.mark.parametrize("sensor", sorted(SENSORS))
def test_profile_is_a_valid_node_parameter_file_that_sets_only_uncertainty(sensor):
    values = P.load_parameter_file(str(PROFILES / f"{sensor}.yaml"))
    assert values and all(name.startswith("uncertainty.") for name in values), sorted(values)
    assert set(values) >= QUANTITY_KEYS                              # every quantity's scale, fitted for the sensor
    config = P.pipeline_config(P.validate_values(values))           # valid names, types and ranges on their own
    assert config.noise.lifting.quantity_scale("height") == values[f"{P.QUANTITY_SCALE}.height"]


@pytest.mark.parametrize("sensor", sorted(SENSORS))
def test_profile_over_the_default_file_changes_only_the_quantity_scales(sensor):
    base = P.load_parameter_file(str(CONFIG))
    profile = P.load_parameter_file(str(PROFILES / f"{sensor}.yaml"))
    merged = P.pipeline_config(P.validate_values({**base, **profile}))
    default = P.pipeline_config(P.validate_values(base))
    ours, theirs = merged.noise.lifting, default.noise.lifting
    # the lifting terms and the relation scale are the sensor-agnostic ones: relation answers do not change
    assert {k: v for k, v in vars(ours).items() if k != "quantity_sigma_scale"} == \
        {k: v for k, v in vars(theirs).items() if k != "quantity_sigma_scale"}
    for name in QUANTITIES:
        assert ours.quantity_scale(name) == profile[f"{P.QUANTITY_SCALE}.{name}"]
    assert merged.noise.sigma0 == default.noise.sigma0 and merged.lifting.noise == merged.noise


@pytest.mark.parametrize("sensor", sorted(SENSORS))
def test_accuracy_offline_profile_auto_picks_the_sensors_file(sensor):
    acc = _accuracy_offline()
    assert acc.profile_path("none", sensor) is None
    path = acc.profile_path("auto", sensor)
    assert path == PROFILES / f"{sensor}.yaml"
    config = acc.build_config(CONFIG, {"detector": "external"}, path)
    profile = P.load_parameter_file(str(path))
    for name in QUANTITIES:
        assert config.noise.lifting.quantity_scale(name) == profile[f"{P.QUANTITY_SCALE}.{name}"]


def test_accuracy_offline_refuses_a_missing_profile(tmp_path):
    from spatial_vlm_ros.core.errors import InputError
    with pytest.raises(InputError, match="no profile file"):
        _accuracy_offline().profile_path(str(tmp_path / "nope.yaml"), "tof")


@pytest.mark.parametrize("sensor", sorted(SENSORS))
def test_rcl_applies_the_profile_after_the_default_file(sensor):
    """rcl itself reads ``--params-file perception.yaml --params-file sensors/<sensor>.yaml`` to what our reader
    merges: the profile's values win, every other parameter is the default file's."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.context import Context
    from rclpy.node import Node

    from spatial_vlm_ros.ros.run import ros_arguments
    profile = PROFILES / f"{sensor}.yaml"
    context = Context()
    rclpy.init(args=["x"] + ros_arguments([str(CONFIG), str(profile)]), context=context)
    try:
        node = Node(P.NODE_NAME, context=context, automatically_declare_parameters_from_overrides=True)
        from_rcl = {name: p.value for name, p in node.get_parameters_by_prefix("").items()
                    if name not in ("use_sim_time", "start_type_description_service")}
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    ours = {**P.load_parameter_file(str(CONFIG)), **P.load_parameter_file(str(profile))}
    assert {k: list(v) if isinstance(v, (list, tuple)) or hasattr(v, "typecode") else v
            for k, v in from_rcl.items()} == ours


def test_fit_uncertainty_writes_a_profile_that_loads_back(tmp_path):
    """What ``fit_uncertainty.py --write-profiles`` writes: the configured terms, the fitted scales, floats."""
    fit = _benchmark("fit_uncertainty")
    values = P.validate_values(P.load_parameter_file(str(CONFIG)))
    scales = {name: 1.0 + 0.01 * i for i, name in enumerate(sorted(QUANTITIES))}
    path = tmp_path / "tof.yaml"
    path.write_text(fit.profile_text("tof", values, scales, [101, 102, 103], ["tof"], CONFIG))
    loaded = P.load_parameter_file(str(path))
    assert set(loaded) == {k for k in values if k.startswith("uncertainty.")}
    assert {k: loaded[f"{P.QUANTITY_SCALE}.{k}"] for k in scales} == pytest.approx(scales)
    assert all(loaded[k] == values[k] or list(loaded[k]) == list(values[k])
               for k in loaded if not k.startswith(P.QUANTITY_SCALE))
    P.validate_values(loaded)                                        # floats written as floats (1.0, not 1)
    with pytest.raises(SystemExit, match="no tof tuning facts for width"):
        fit.profile_text("tof", values, {k: v for k, v in scales.items() if k != "width"}, [101], ["tof"], CONFIG)

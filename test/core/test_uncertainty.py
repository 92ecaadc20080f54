"""The lifting-error terms of the uncertainty model (``core.uncertainty``) and how sigmas and confidences use
them (``core.quantities``, ``core.relations``), plus their node parameters."""
import math
from dataclasses import replace

import numpy as np
import pytest
from reasoning_fixtures import TABLE_Z, make_scene, on_table, pitched_gravity

from spatial_vlm_ros.core import quantities as q
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.relations import evaluate
from spatial_vlm_ros.core.uncertainty import FITTED_LIFTING_ERROR, LiftingError, ray_basis
from spatial_vlm_ros.ros.parameters import PARAMETERS, pipeline_config, validate_values

GRAVITY = pitched_gravity(35.0)
SENSOR = DepthNoiseModel()
MODEL = DepthNoiseModel(lifting=FITTED_LIFTING_ERROR)


def _pair():
    a = on_table("mug_1", -0.15, 0.8, (0.08, 0.08, 0.10), GRAVITY)
    b = on_table("bowl_1", 0.15, 1.0, (0.16, 0.16, 0.07), GRAVITY)
    return a, b, make_scene([a, b], GRAVITY)


def test_default_is_the_sensor_term_alone():
    a, b, scene = _pair()
    assert DepthNoiseModel().lifting == LiftingError()
    for name in q.QUANTITIES:
        other = b if q.QUANTITIES[name].binary else None
        m = q.measure(name, a, other, scene, SENSOR)
        plain = q.measure(name, a, other, scene, replace(SENSOR, lifting=LiftingError()))
        assert m.uncertainty_m == plain.uncertainty_m


def test_lifting_term_adds_in_quadrature_to_every_quantity():
    a, b, scene = _pair()
    for name in q.QUANTITIES:
        other = b if q.QUANTITIES[name].binary else None
        sensor = q.measure(name, a, other, scene, SENSOR).uncertainty_m
        model = q.measure(name, a, other, scene, MODEL).uncertainty_m
        assert model >= sensor, name
        if name != "height":                  # the fitted height term is zero: the sensor term covers it
            assert model > sensor, name


def test_center_sigma_is_largest_along_the_ray():
    a, _, scene = _pair()
    up = scene.gravity.up
    ray, across, vertical = ray_basis(q.unit(a.center), up)
    along = q.center_sigma(a, MODEL, ray, up)
    assert along > q.center_sigma(a, MODEL, across, up)
    assert along == pytest.approx(q.center_sigma(a, MODEL, None, up))       # None: the worst direction
    assert q.center_sigma(a, MODEL, ray, up, lifting=False) == q.center_sigma(a, SENSOR, ray, up)


def test_ray_basis_is_orthonormal_and_horizontal_across():
    up = GRAVITY.up
    basis = ray_basis(q.unit([0.2, 0.3, 1.0]), up)
    assert np.allclose(basis @ basis.T, np.eye(3), atol=1e-12)
    assert abs(float(basis[1] @ up)) < 1e-12                                # the across vector is horizontal


def test_extent_sigma_follows_the_axis_and_its_extent():
    a, _, _ = _pair()
    width, depth, height = (q.extent_sigma(a, MODEL, axis) for axis in range(3))
    assert depth > width and depth > height
    assert q.extent_sigma(a, MODEL) == pytest.approx(depth)                 # None: the worst axis
    big = on_table("box_1", 0.0, 1.0, (0.08, 0.40, 0.10), GRAVITY)
    assert q.extent_sigma(big, MODEL, 1) > depth                            # grows with the extent


def test_relation_sigma_scale_sharpens_confidence_without_changing_the_answer():
    a, b, scene = _pair()
    wide = evaluate("left_of", a, b, scene, replace(MODEL, lifting=replace(FITTED_LIFTING_ERROR,
                                                                             relation_sigma_scale=1.0)))
    sharp = evaluate("left_of", a, b, scene, MODEL)
    assert wide.holds == sharp.holds and wide.margin_m == sharp.margin_m
    assert sharp.sigma_m == pytest.approx(wide.sigma_m * FITTED_LIFTING_ERROR.relation_sigma_scale)
    assert sharp.confidence >= wide.confidence


def test_on_top_of_contact_rule_does_not_widen_with_the_lifting_term():
    """The lifting term widens on_top_of's sigma, not its contact tolerance: a cup 3 cm above a box is not
    on it, with or without the term."""
    box = on_table("box_1", 0.0, 1.0, (0.30, 0.25, 0.20), GRAVITY)
    cup = on_table("cup_1", 0.0, 1.0, (0.08, 0.08, 0.09), GRAVITY, bottom=TABLE_Z + 0.23)
    scene = make_scene([box, cup], GRAVITY)
    for noise in (SENSOR, MODEL):
        assert not evaluate("on_top_of", cup, box, scene, noise).holds


@pytest.mark.parametrize("bad", [dict(center_ray_m=-0.01), dict(center_across_m=math.nan),
                                 dict(extent_floor_m=(0.0, 0.1)), dict(relation_sigma_scale=0.0),
                                 dict(extent_fraction=(0.0, 2.0, 0.0))])
def test_invalid_terms_are_refused(bad):
    with pytest.raises(InputError):
        LiftingError(**bad)


def test_quantity_sigma_scale_scales_only_that_quantity():
    a, b, scene = _pair()
    scaled = replace(MODEL, lifting=replace(FITTED_LIFTING_ERROR, quantity_sigma_scale={"gap": 0.5, "height": 2.0}))
    plain = replace(MODEL, lifting=replace(FITTED_LIFTING_ERROR, quantity_sigma_scale=()))
    for name in q.QUANTITIES:
        other = b if q.QUANTITIES[name].binary else None
        m, p = q.measure(name, a, other, scene, scaled), q.measure(name, a, other, scene, plain)
        assert m.value_m == p.value_m, name
        assert m.uncertainty_m == pytest.approx(p.uncertainty_m * {"gap": 0.5, "height": 2.0}.get(name, 1.0)), name
    diff, plain_diff = (q.signed_difference("height", a, b, scene, n) for n in (scaled, plain))
    assert diff.uncertainty_m == pytest.approx(2.0 * plain_diff.uncertainty_m)


@pytest.mark.parametrize("scales", [{"gap": 0.0}, {"gap": -1.0}, {"gap": 11.0}, {"gap": "x"}])
def test_quantity_sigma_scale_refuses_bad_values(scales):
    with pytest.raises(InputError, match="quantity_sigma_scale"):
        LiftingError(quantity_sigma_scale=scales)


def _values(**overrides):
    values = {spec.name: spec.default for spec in PARAMETERS}
    values.update(overrides)
    return values


def test_node_parameters_build_the_fitted_model():
    config = pipeline_config(validate_values(_values()))
    assert config.noise.lifting == FITTED_LIFTING_ERROR
    assert config.lifting.noise.lifting == FITTED_LIFTING_ERROR
    config = pipeline_config(validate_values(_values(**{"uncertainty.extent_fraction": [0.0, 0.1, 0.0],
                                                        "uncertainty.quantity_sigma_scale.gap": 0.7})))
    assert config.noise.lifting.extent_fraction == (0.0, 0.1, 0.0)
    assert config.noise.lifting.quantity_scale("gap") == 0.7


@pytest.mark.parametrize("name, value", [("uncertainty.extent_floor_m", [0.0, 0.01]),
                                         ("uncertainty.extent_floor_m", [0.0, -0.01, 0.0]),
                                         ("uncertainty.center_ray_m", 2.0),
                                         ("uncertainty.relation_sigma_scale", 0.0),
                                         ("uncertainty.quantity_sigma_scale.height", 0.0)])
def test_node_parameters_refuse_bad_terms(name, value):
    with pytest.raises(InputError, match=name.replace(".", r"\.")):
        validate_values(_values(**{name: value}))

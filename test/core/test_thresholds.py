"""Thresholded relations (``core.thresholds``): a quantity against a threshold in metres, the confidence from
the margin over its sigma; through ``evaluate_threshold``, ``get_relation(threshold_m=...)`` and questions."""
import math

import numpy as np
import pytest
from surface_fixtures import tabletop_queries, tabletop_scene

from spatial_vlm_ros.core.errors import QueryError
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.quantities import Quantity
from spatial_vlm_ros.core.relations import confidence_from_margin
from spatial_vlm_ros.core.thresholds import canonical_comparison, evaluate_threshold, threshold_on, thresholded_relation

NOISE = DepthNoiseModel()


def _objs():
    scene = tabletop_scene()
    return scene, {o.id.split("_")[0]: o for o in scene.objects}


@pytest.mark.parametrize("threshold,holds", [(0.20, False), (0.29, False), (0.31, True), (0.50, True)])
def test_within_compares_the_center_distance(threshold, holds):
    scene, o = _objs()
    distance = float(np.linalg.norm(o["mug"].center - o["bowl"].center))
    r = evaluate_threshold("distance", "within", threshold, o["mug"], o["bowl"], scene, NOISE)
    assert r.value_m == pytest.approx(distance) and r.holds == holds
    assert r.margin_m == pytest.approx(threshold - distance)
    assert r.confidence == pytest.approx(confidence_from_margin(r.margin_m, r.sigma_m))


def test_differences_are_signed():
    scene, o = _objs()
    r = evaluate_threshold("taller", "more than", 0.05, o["bottle"], o["can"], scene, NOISE)
    assert r.holds and r.value_m == pytest.approx(0.13) and r.margin_m == pytest.approx(0.08)
    r = evaluate_threshold("taller", "more_than", 0.05, o["can"], o["bottle"], scene, NOISE)
    assert not r.holds and r.value_m == pytest.approx(-0.13)
    r = evaluate_threshold("shorter", "more_than", 0.10, o["can"], o["bottle"], scene, NOISE)
    assert r.holds and r.value_m == pytest.approx(0.13)
    r = evaluate_threshold("taller", "less_than", 0.2, o["bottle"], o["can"], scene, NOISE)
    assert r.holds


def test_confidence_falls_to_a_half_at_the_threshold():
    exact = threshold_on(Quantity("distance", 0.20, 0.01), "less_than", 0.20)
    near = threshold_on(Quantity("distance", 0.19, 0.01), "less_than", 0.20)
    far = threshold_on(Quantity("distance", 0.10, 0.01), "less_than", 0.20)
    assert not exact.holds and exact.confidence == pytest.approx(0.5)
    assert near.holds and near.confidence == pytest.approx(0.5 * (1 + math.erf(1 / math.sqrt(2))))
    assert far.confidence > 0.999


def test_words_and_bad_input():
    assert [canonical_comparison(w) for w in ("within", "less than", "<", "more than", "over", "at least")] == \
        ["less_than"] * 3 + ["more_than"] * 3
    assert thresholded_relation("within") == ("distance", "less_than")
    assert thresholded_relation("taller") == ("taller", "more_than")
    scene, o = _objs()
    for args, needle in [(("distance", "about", 0.2), "unknown comparison"),
                         (("distance", "within", -0.1), "threshold must be"),
                         (("distance", "within", float("inf")), "threshold must be"),
                         (("distance", "within", "far"), "number of metres"),
                         (("color", "within", 0.1), "unknown quantity")]:
        with pytest.raises(QueryError, match=needle):
            evaluate_threshold(*args, o["mug"], o["bowl"], scene, NOISE)
    with pytest.raises(QueryError, match="compares two objects"):
        evaluate_threshold("taller", "more_than", 0.1, o["mug"], None, scene, NOISE)
    with pytest.raises(QueryError, match="takes no threshold"):
        thresholded_relation("left_of")


def test_get_relation_with_a_threshold():
    q = tabletop_queries()
    a = q.get_relation("mug", "within", "bowl", threshold_m=0.35)
    assert a.success and a.holds and a.relation == "within" and a.margin_m == pytest.approx(0.35 - 0.3, abs=1e-3)
    assert a.answer.startswith("Yes, the mug is within 35 cm of the bowl")
    a = q.get_relation("bottle", "taller_than", "can", threshold_m=0.20)
    assert a.success and not a.holds and a.margin_m == pytest.approx(0.13 - 0.20)
    a = q.get_relation("mug", "left_of", "bowl", threshold_m=0.1)
    assert not a.success and "takes no threshold" in a.message
    plain = q.get_relation("mug", "left_of", "bowl")
    assert plain.success and plain.holds


@pytest.mark.parametrize("question,yes", [
    ("Is the mug within 20 cm of the bowl?", False),
    ("Is the mug within 35 cm of the bowl?", True),
    ("Is the mug more than 25 cm away from the bowl?", True),
    ("Is the bottle more than 5 cm taller than the can?", True),
    ("Is the bottle more than 20 cm taller than the can?", False),
    ("Is the can less than 5 cm taller than the bottle?", True),
    ("Is the mug within 1 m of the camera?", True),
    ("Is the mug within 0.5 m of the camera?", False),
])
def test_threshold_questions(question, yes):
    a = tabletop_queries().ask(question)
    assert a.success and a.kind == "yes_no" and a.yes == yes, a.message
    assert a.query is not None and a.query.kind == "threshold"
    assert 0.5 <= a.confidence <= 1.0

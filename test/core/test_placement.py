"""Free space and clearance (``core.placement``, ``SpatialQueries.check_placement``, placement questions) on
the known tabletop of ``surface_fixtures``: mug and bowl footprints 18 cm apart along gravity x."""
import math

import numpy as np
import pytest
from reasoning_fixtures import TABLE_Z, make_scene, on_table
from surface_fixtures import tabletop, tabletop_queries, tabletop_scene

from spatial_vlm_ros.core.errors import InputError, QueryError, ResolutionError
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.placement import PlacementParams, canonical_location, check_placement

NOISE = DepthNoiseModel()
GAP = (0.10 - 0.08) - (-0.20 + 0.04)          # bowl's left side minus the mug's right side: 0.18 m


@pytest.mark.parametrize("width", [0.05, 0.10, 0.17, 0.19, 0.25])
def test_between_has_the_known_free_width(width):
    r = check_placement(tabletop_scene(), (width, width, 0.08), "between", ["mug", "bowl"], noise=NOISE)
    assert r.free_width_m == pytest.approx(GAP, abs=1e-9)
    assert r.margin_m == pytest.approx((GAP - width) / 2, abs=0.003)      # centered: half the spare each side
    assert r.fits == (width < GAP)
    assert r.pose.center_g[1] == pytest.approx(0.70, abs=1e-9)            # on the line between the centers
    assert r.pose.center_g[0] == pytest.approx(-0.16 + GAP / 2, abs=0.003)
    assert r.pose.center_g[2] == pytest.approx(TABLE_Z + 0.04)
    assert r.support_id == "table" and r.reference_ids == ("mug_1", "bowl_1")
    assert {"mug_1", "bowl_1"} <= set(r.limiting.split(", "))
    assert r.confidence == pytest.approx(0.5 * (1 + math.erf(abs(r.margin_m) / r.sigma_m / math.sqrt(2))))


def test_a_long_box_fits_turned_and_the_confidence_follows_the_margin():
    long_box = check_placement(tabletop_scene(), (0.30, 0.12, 0.05), "between", ["mug", "bowl"], noise=NOISE)
    assert long_box.fits and math.cos(long_box.pose.yaw) == pytest.approx(0.0, abs=1e-9)   # 12 cm along the gap
    tight = check_placement(tabletop_scene(), (GAP - 0.001, GAP - 0.001, 0.05), "between", ["mug", "bowl"],
                            noise=NOISE)
    roomy = check_placement(tabletop_scene(), (0.10, 0.10, 0.05), "between", ["mug", "bowl"], noise=NOISE)
    assert tight.fits and tight.confidence < roomy.confidence and roomy.confidence > 0.99
    assert 0.5 <= tight.confidence < 0.9


def test_clearance_is_required_on_every_side():
    scene = tabletop_scene()
    ok = check_placement(scene, (0.10, 0.10, 0.05), "between", ["mug", "bowl"], noise=NOISE,
                         params=PlacementParams(clearance_m=0.03))
    no = check_placement(scene, (0.10, 0.10, 0.05), "between", ["mug", "bowl"], noise=NOISE,
                         params=PlacementParams(clearance_m=0.05))
    assert ok.fits and ok.margin_m == pytest.approx(0.01, abs=0.003) and not no.fits


def test_beside_on_and_at():
    scene = tabletop_scene()
    left = check_placement(scene, (0.10, 0.10, 0.10), "to the left of", ["mug"], noise=NOISE)
    assert left.fits and left.location == "left_of"
    assert left.pose.center_g[0] < -0.24 and left.pose.center_g[1] == pytest.approx(0.70)
    assert left.margin_m == pytest.approx(PlacementParams().target_margin_m, abs=0.003)   # next to the mug
    blocked = check_placement(scene, (0.10, 0.10, 0.10), "right of", ["mug"], noise=NOISE)
    assert blocked.fits and blocked.pose.center_g[0] < 0.02          # the 18 cm gap before the bowl
    on_box = check_placement(scene, (0.08, 0.08, 0.05), "on", ["box"], noise=NOISE)
    lo, hi = np.array([-0.45, 1.075]), np.array([-0.15, 1.325])      # the box's top, the lemon in its middle
    assert on_box.fits and on_box.support_id == "box_1"
    assert on_box.pose.center_g[2] == pytest.approx(TABLE_Z + 0.20 + 0.025)
    center = on_box.pose.center_g[:2]
    assert np.all(center - 0.04 >= lo - 1e-9) and np.all(center + 0.04 <= hi + 1e-9)
    too_big = check_placement(scene, (0.14, 0.14, 0.05), "on", ["box"], noise=NOISE)
    assert not too_big.fits                                          # the lemon leaves no 14 cm square
    on_table_ = check_placement(scene, (0.2, 0.2, 0.2), "on", ["table"], noise=NOISE)
    assert on_table_.fits and on_table_.support_id == "table"
    at = check_placement(scene, (0.10, 0.10, 0.10), "at", point=(-0.07, 0.70), noise=NOISE)   # the gap center
    assert at.fits and at.margin_m == pytest.approx(0.04, abs=1e-9) and at.free_width_m == pytest.approx(GAP)
    assert np.allclose(at.pose.center_c, scene.gravity.to_camera(at.pose.center_g))
    overlap = check_placement(scene, (0.10, 0.10, 0.10), "at", point=(-0.20, 0.70), noise=NOISE)
    assert not overlap.fits and "mug_1" in overlap.limiting
    off = check_placement(scene, (0.10, 0.10, 0.10), "at", point=(0.0, 2.0), noise=NOISE)
    assert not off.fits and "edge of the table" in off.limiting
    air = check_placement(scene, (0.10, 0.10, 0.10), "at", point=(0.0, 0.9, TABLE_Z + 0.5), noise=NOISE)
    assert not air.fits and air.limiting == "no support"


def test_objects_above_or_below_the_box_do_not_occupy():
    _, g = tabletop()
    shelf = on_table("shelf_1", 0.0, 0.9, (0.4, 0.4, 0.02), g, bottom=TABLE_Z + 0.30)
    scene = make_scene([shelf], g)
    low = check_placement(scene, (0.10, 0.10, 0.10), "at", point=(0.0, 0.9), noise=NOISE)
    high = check_placement(scene, (0.10, 0.10, 0.40), "at", point=(0.0, 0.9), noise=NOISE)
    assert low.fits and not high.fits


@pytest.mark.parametrize("size,location,refs,error,needle", [
    ((-0.1, 0.1, 0.1), "between", ["mug", "bowl"], InputError, "positive"),
    ((0.1, 0.1), "between", ["mug", "bowl"], InputError, "three finite"),
    ((0.1, float("nan"), 0.1), "between", ["mug", "bowl"], InputError, "three finite"),
    ((0.1, 0.1, 0.1), "between", ["mug"], QueryError, "needs 2 reference"),
    ((0.1, 0.1, 0.1), "between", ["mug", "mug"], QueryError, "two different objects"),
    ((0.1, 0.1, 0.1), "under", ["mug"], QueryError, "unknown placement location"),
    ((0.1, 0.1, 0.1), "left of", ["sofa"], ResolutionError, "no object matches 'sofa'"),
    ((0.1, 0.1, 0.1), "at", [], QueryError, "needs a point"),
])
def test_refusals(size, location, refs, error, needle):
    with pytest.raises(error, match=needle):
        check_placement(tabletop_scene(), size, location, refs, noise=NOISE)


def test_locations():
    assert [canonical_location(w) for w in ("between", "left of", "to the right of", "in front of", "behind",
                                            "on top of", "on", "at")] == \
        ["between", "left_of", "right_of", "in_front_of", "behind", "on", "on", "at"]


def test_the_facade_and_the_questions():
    q = tabletop_queries()
    a = q.check_placement((0.10, 0.10, 0.10), "between", ["mug", "bowl"])
    assert a.success and a.fits and a.free_width_m == pytest.approx(GAP)
    assert a.margin_m == pytest.approx(0.04, abs=0.003)
    assert a.location == "between" and a.reference_ids == ("mug_1", "bowl_1") and a.support_id == "table"
    assert len(a.center_gravity) == len(a.center_camera) == 3 and a.confidence > 0.99
    bad = q.check_placement((0.1, -0.1, 0.1), "between", ["mug", "bowl"])
    assert not bad.success and "positive" in bad.message
    assert not q.check_placement((0.1, 0.1, 0.1), "between", ["mug", "bowl"], clearance_m=-1).success
    yes = q.ask("Is there space to put a 10 cm box between the mug and the bowl?")
    assert yes.success and yes.kind == "yes_no" and yes.yes and yes.value == pytest.approx(GAP)
    assert yes.answer.startswith("Yes, a 10 cm box fits between the mug and the bowl: 18 cm free")
    no = q.ask("Is there room for a 20 cm box between the mug and the bowl?")
    assert no.success and not no.yes and no.answer.startswith("No, a 20 cm box does not fit")
    gap = q.ask("How wide is the gap between the mug and the bowl?")
    assert gap.success and gap.kind == "metric" and gap.value == pytest.approx(GAP, abs=0.002)
    assert q.ask("Can I put a 5 x 5 x 3 cm box on the box?").yes

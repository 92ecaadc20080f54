"""Relations on analytic scenes with known answers, level and pitched cameras."""
import numpy as np
import pytest
from reasoning_fixtures import TABLE_Z, make_scene, on_table, pitched_gravity

from spatial_vlm_ros.core.errors import QueryError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.relations import ALIASES, RELATIONS, canonical_relation, confidence_from_margin, evaluate

NOISE = DepthNoiseModel()
LEVEL = GravityFrame.from_up(np.array([0.0, -1.0, 0.0]), TABLE_Z, "static")
PITCHED = pitched_gravity(35.0)


def _scene_objects(g):
    """A tabletop whose every pair below has a relation that holds by >= 2 cm."""
    return {
        "mug": on_table("mug_1", -0.20, 0.70, (0.08, 0.08, 0.10), g),
        "bowl": on_table("bowl_1", 0.15, 1.00, (0.16, 0.16, 0.07), g),
        "bottle": on_table("bottle_1", 0.40, 0.80, (0.07, 0.07, 0.25), g),
        "box": on_table("box_1", -0.10, 1.10, (0.30, 0.25, 0.20), g),
        "cup": on_table("cup_1", -0.10, 1.10, (0.08, 0.08, 0.09), g, bottom=TABLE_Z + 0.20),   # on the box
        "lamp": on_table("lamp_1", 0.15, 1.00, (0.10, 0.10, 0.10), g, bottom=TABLE_Z + 0.40),  # over the bowl
        "plate": on_table("plate_1", -0.45, 0.90, (0.26, 0.26, 0.02), g),
        "can": on_table("can_1", 0.40, 0.87, (0.066, 0.066, 0.12), g),   # 2 mm gap beside the bottle
    }


# (relation, subject, reference): each holds with a clear margin
CASES = [
    ("left_of", "mug", "bowl"), ("right_of", "bowl", "mug"),
    ("in_front_of", "mug", "bowl"), ("behind", "box", "mug"),
    ("closer_to_camera", "mug", "box"), ("farther_from_camera", "box", "mug"),
    ("above", "lamp", "bowl"), ("below", "bowl", "lamp"), ("above", "cup", "box"),
    ("on_top_of", "cup", "box"),
    ("higher_than", "cup", "mug"), ("lower_than", "mug", "cup"),
    ("taller_than", "bottle", "can"), ("shorter_than", "can", "bottle"),
    ("bigger_than", "box", "mug"), ("smaller_than", "mug", "box"),
    ("wider_than", "plate", "bottle"), ("thinner_than", "bottle", "plate"),
    ("next_to", "bottle", "can"), ("next_to", "can", "bottle"),
]
# (relation, subject, reference): each is false with a clear margin
FALSE_CASES = [
    ("on_top_of", "lamp", "bowl"),     # above but 33 cm higher: not in contact
    ("on_top_of", "box", "cup"),
    ("on_top_of", "mug", "box"),       # beside it on the table
    ("above", "mug", "box"),
    ("above", "lamp", "mug"),          # higher, but not over it
    ("next_to", "cup", "box"),         # stacked, not side by side
    ("next_to", "mug", "bottle"),      # 56 cm apart
]


def test_every_relation_is_covered():
    assert {r for r, _, _ in CASES} == set(RELATIONS)


@pytest.mark.parametrize("gravity", [LEVEL, PITCHED], ids=["level", "pitched35"])
@pytest.mark.parametrize("relation,subject,reference", CASES)
def test_relation_and_inverse_beyond_margin(gravity, relation, subject, reference):
    objs = _scene_objects(gravity)
    scene = make_scene(objs.values(), gravity)
    a, b = objs[subject], objs[reference]
    r = evaluate(relation, a, b, scene, NOISE)
    assert r.holds and r.margin_m > 0.01 and r.confidence > 0.99, r.explanation
    spec = RELATIONS[relation]
    if spec.inverse:
        inv = evaluate(spec.inverse, a, b, scene, NOISE)
        assert not inv.holds and inv.confidence > 0.99, inv.explanation
        swapped = evaluate(relation, b, a, scene, NOISE)
        assert not swapped.holds and swapped.confidence > 0.99, swapped.explanation
        swapped_inv = evaluate(spec.inverse, b, a, scene, NOISE)
        assert swapped_inv.holds and swapped_inv.margin_m == pytest.approx(r.margin_m)


@pytest.mark.parametrize("gravity", [LEVEL, PITCHED], ids=["level", "pitched35"])
@pytest.mark.parametrize("relation,subject,reference", FALSE_CASES)
def test_false_relations_beyond_margin(gravity, relation, subject, reference):
    objs = _scene_objects(gravity)
    r = evaluate(relation, objs[subject], objs[reference], make_scene(objs.values(), gravity), NOISE)
    assert not r.holds and r.confidence > 0.99, r.explanation


def test_on_top_of_contact_tolerance():
    g = LEVEL
    box = on_table("box_1", 0.0, 1.0, (0.3, 0.3, 0.2), g)
    for lift, expected in [(0.0, True), (0.015, True), (-0.01, True), (0.06, False)]:
        cup = on_table("cup_1", 0.0, 1.0, (0.08, 0.08, 0.1), g, bottom=TABLE_Z + 0.2 + lift)
        r = evaluate("on_top_of", cup, box, make_scene([box, cup], g), NOISE)
        assert r.holds is expected, (lift, r.explanation)
    # the cup's center beyond the box's edge: no support
    cup = on_table("cup_1", 0.25, 1.0, (0.08, 0.08, 0.1), g, bottom=TABLE_Z + 0.2)
    assert not evaluate("on_top_of", cup, box, make_scene([box, cup], g), NOISE).holds


def test_confidence_is_low_near_zero_margin_and_falls_with_range():
    g = LEVEL
    a = on_table("mug_1", 0.0000, 0.8, (0.08, 0.08, 0.1), g)
    b = on_table("bowl_1", 0.0002, 0.8, (0.08, 0.08, 0.1), g)
    r = evaluate("left_of", a, b, make_scene([a, b], g), NOISE)
    assert r.holds and 0.5 <= r.confidence < 0.6
    assert evaluate("right_of", a, b, make_scene([a, b], g), NOISE).confidence == pytest.approx(r.confidence)
    same = on_table("bowl_1", 0.0, 0.8, (0.08, 0.08, 0.1), g)
    r0 = evaluate("left_of", a, same, make_scene([a, same], g), NOISE)
    assert not r0.holds and r0.confidence == pytest.approx(0.5)

    def conf_at(y):
        near = on_table("mug_1", 0.0, y, (0.08, 0.08, 0.1), g)
        other = on_table("bowl_1", 0.006, y, (0.08, 0.08, 0.1), g)
        return evaluate("left_of", near, other, make_scene([near, other], g), NOISE).confidence
    assert conf_at(0.6) > conf_at(2.0) > conf_at(4.0) > 0.5


def test_confidence_formula():
    assert confidence_from_margin(0.0, 0.01) == pytest.approx(0.5)
    assert confidence_from_margin(0.01, 0.01) == pytest.approx(0.8413447, abs=1e-6)
    assert confidence_from_margin(-0.02, 0.01) == pytest.approx(0.9772499, abs=1e-6)


def _camera_up_height(obj):
    """What a naive reasoner would use as 'height': minus the camera y of the center."""
    return -obj.center[1]


def test_pitched_camera_higher_than_uses_gravity_not_camera_up():
    g = PITCHED
    far_low = on_table("block_1", 0.0, 1.60, (0.10, 0.10, 0.06), g)            # center 3 cm above the table
    near_high = on_table("box_1", 0.0, 0.45, (0.10, 0.10, 0.20), g)            # center 10 cm above the table
    assert _camera_up_height(far_low) > _camera_up_height(near_high)           # naive answer: far one higher
    scene = make_scene([far_low, near_high], g)
    assert evaluate("higher_than", near_high, far_low, scene, NOISE).holds
    assert not evaluate("higher_than", far_low, near_high, scene, NOISE).holds
    assert evaluate("lower_than", far_low, near_high, scene, NOISE).confidence > 0.99


def test_pitched_camera_taller_than_uses_gravity_extent():
    g = PITCHED
    flat_long = on_table("tray_1", 0.0, 0.9, (0.10, 0.50, 0.05), g)             # lies flat, 5 cm tall
    bottle = on_table("bottle_1", 0.3, 0.9, (0.07, 0.07, 0.20), g)              # 20 cm tall
    naive = {o.id: np.ptp(o.points[:, 1]) for o in (flat_long, bottle)}         # camera-y extent
    assert naive["tray_1"] > naive["bottle_1"]                                   # naive answer: tray taller
    scene = make_scene([flat_long, bottle], g)
    assert evaluate("taller_than", bottle, flat_long, scene, NOISE).holds
    assert evaluate("shorter_than", flat_long, bottle, scene, NOISE).holds


def test_pitched_camera_above_and_on_top_of_use_gravity():
    g = PITCHED
    box = on_table("box_1", 0.0, 0.70, (0.30, 0.20, 0.15), g)
    behind = on_table("cup_1", 0.0, 1.10, (0.08, 0.08, 0.10), g)               # on the table behind the box
    lowest_image_row_of_cup = behind.points[:, 1].max()
    highest_image_row_of_box = box.points[:, 1].min()
    assert lowest_image_row_of_cup < highest_image_row_of_box                   # naive: cup drawn above the box
    scene = make_scene([box, behind], g)
    for rel in ("above", "on_top_of", "higher_than"):
        r = evaluate(rel, behind, box, scene, NOISE)
        assert not r.holds and r.confidence > 0.99, r.explanation
    stacked = on_table("cup_1", 0.0, 0.70, (0.08, 0.08, 0.10), g, bottom=TABLE_Z + 0.15)
    scene = make_scene([box, stacked], g)
    assert evaluate("on_top_of", stacked, box, scene, NOISE).holds
    assert evaluate("below", box, stacked, scene, NOISE).holds


def test_aliases_map_to_canonical_names():
    for alias, name in [("left", "left_of"), ("to the left of", "left_of"), ("Left_Of", "left_of"),
                        ("on", "on_top_of"), ("on top of", "on_top_of"), ("larger", "bigger_than"),
                        ("beneath", "below"), ("further away than", "farther_from_camera"),
                        ("narrower than", "thinner_than"), ("beside", "next_to"), ("in-front-of", "in_front_of")]:
        assert canonical_relation(alias) == name
    assert all(v in RELATIONS for v in ALIASES.values())
    with pytest.raises(QueryError, match="known relations: left_of"):
        canonical_relation("inside")


def test_same_object_and_unknown_relation_raise():
    objs = _scene_objects(LEVEL)
    scene = make_scene(objs.values(), LEVEL)
    with pytest.raises(QueryError, match="same object"):
        evaluate("left_of", objs["mug"], objs["mug"], scene, NOISE)
    with pytest.raises(QueryError, match="unknown relation"):
        evaluate("levitating over", objs["mug"], objs["bowl"], scene, NOISE)

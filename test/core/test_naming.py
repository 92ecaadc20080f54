"""Resolving ids, labels, color and size words; ambiguity lists the candidates."""
import pytest
from reasoning_fixtures import on_table

from spatial_vlm_ros.core.errors import ResolutionError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.naming import display_name, matches, resolve, singular

G = GravityFrame.camera_default()
OBJECTS = [
    on_table("mug_1", -0.2, 0.8, (0.08, 0.08, 0.10), G, label="mug", color_name="red"),
    on_table("mug_2", 0.2, 0.8, (0.09, 0.09, 0.12), G, label="mug", color_name="blue"),
    on_table("bowl_1", 0.0, 1.0, (0.16, 0.16, 0.07), G, label="bowl", color_name="white"),
    on_table("red_object_1", 0.4, 1.0, (0.05, 0.05, 0.05), G, label="red object", color_name="red"),
    on_table("red_object_2", 0.5, 1.2, (0.20, 0.10, 0.10), G, label="red object", color_name="red"),
    on_table("coffee_mug_1", -0.4, 1.1, (0.08, 0.08, 0.10), G, label="coffee mug", color_name="green"),
    on_table("glass_1", 0.6, 0.9, (0.07, 0.07, 0.14), G, label="wine glass", color_name="gray"),
]


@pytest.mark.parametrize("name,expected", [
    ("mug_1", "mug_1"), ("MUG_2", "mug_2"), ("mug 2", "mug_2"), ("bowl", "bowl_1"), ("the bowl", "bowl_1"),
    ("Bowls", "bowl_1"), ("red mug", "mug_1"), ("the blue mug", "mug_2"), ("The Blue Mugs", "mug_2"),
    ("green mug", "coffee_mug_1"), ("coffee mug", "coffee_mug_1"), ("small red object", "red_object_1"),
    ("the large red object", "red_object_2"), ("big red one", "red_object_2"), ("white object", "bowl_1"),
    ("grey glass", "glass_1"), ("wine glasses", "glass_1"), ("tall blue mug", "mug_2"),
    ("the small blue mug", "mug_2"),   # size word among one candidate: accepted
])
def test_resolves(name, expected):
    assert resolve(name, OBJECTS).id == expected


def test_ambiguous_lists_candidates_with_colors():
    with pytest.raises(ResolutionError) as err:
        resolve("the mug", OBJECTS)
    msg = str(err.value)
    assert msg.startswith("'the mug' is ambiguous: mug_1 (red, ")
    assert "mug_2 (blue, " in msg and "coffee_mug_1 (green, " in msg
    assert err.value.candidates == ["mug_1", "mug_2", "coffee_mug_1"]
    with pytest.raises(ResolutionError) as err:
        resolve("red", OBJECTS)        # objects labelled "red ..." are preferred to the red mug
    assert set(err.value.candidates) == {"red_object_1", "red_object_2"}
    assert resolve("green", OBJECTS).id == "coffee_mug_1"


def test_size_word_picks_the_extreme_among_peers():
    assert resolve("small mug", OBJECTS[:2]).id == "mug_1"
    assert resolve("large mug", OBJECTS[:2]).id == "mug_2"
    assert resolve("short mug", OBJECTS[:2]).id == "mug_1"


def test_no_match_lists_all_objects():
    with pytest.raises(ResolutionError) as err:
        resolve("purple elephant", OBJECTS)
    assert "no object matches 'purple elephant'" in str(err.value)
    assert err.value.candidates == [o.id for o in OBJECTS]
    with pytest.raises(ResolutionError, match="scene is empty"):
        resolve("mug", [])
    for bad in ("", "   ", None, 3):
        with pytest.raises(ResolutionError):
            resolve(bad, OBJECTS)


def test_matches_returns_every_match_for_filters():
    assert [o.id for o in matches("mugs", OBJECTS)] == ["mug_1", "mug_2", "coffee_mug_1"]
    assert [o.id for o in matches("red objects", OBJECTS)] == ["red_object_1", "red_object_2"]
    assert matches("sofa", OBJECTS) == []
    assert matches(None, OBJECTS) == []


def test_display_names():
    assert display_name(OBJECTS[2], OBJECTS) == "the bowl"
    assert display_name(OBJECTS[0], OBJECTS) == "the red mug"
    assert display_name(OBJECTS[3], OBJECTS) == "the red object (red_object_1)"


def test_singular():
    assert [singular(w) for w in ("mugs", "boxes", "cherries", "glass", "glasses", "bus", "cases")] == \
        ["mug", "box", "cherry", "glass", "glass", "bus", "case"]

"""Question parsing, table-driven over every template, and the answer sentences' units."""
import pytest

from spatial_vlm_ros.core.answers import format_length
from spatial_vlm_ros.core.errors import QueryError
from spatial_vlm_ros.core.questions import TEMPLATES, normalise_question, parse

# question -> (kind, relation, quantity, subject, reference)
CASES = {
    # yes/no relations
    "Is the mug to the left of the bowl?": ("relation", "left_of", "", "mug", "bowl"),
    "Is the mug to the left of the bowl or not?": ("relation", "left_of", "", "mug", "bowl"),
    "is the mug left of the bowl": ("relation", "left_of", "", "mug", "bowl"),
    "Is the mug on the left side of the bowl?": ("relation", "left_of", "", "mug", "bowl"),
    "Is the red mug to the right of mug_2?": ("relation", "right_of", "", "red mug", "mug_2"),
    "Is the bottle taller than the can?": ("relation", "taller_than", "", "bottle", "can"),
    "Is the cup on top of the box?": ("relation", "on_top_of", "", "cup", "box"),
    "Is the cup on the box?": ("relation", "on_top_of", "", "cup", "box"),
    "Is the cup sitting on the box?": ("relation", "on_top_of", "", "cup", "box"),
    "Is the mug closer to the camera than the bowl?": ("relation", "closer_to_camera", "", "mug", "bowl"),
    "Is the mug further away than the bowl?": ("relation", "farther_from_camera", "", "mug", "bowl"),
    "Is the lamp above the table?": ("relation", "above", "", "lamp", "table"),
    "Is the ball under the chair?": ("relation", "below", "", "ball", "chair"),
    "Is the mug behind the bowl?": ("relation", "behind", "", "mug", "bowl"),
    "Is the mug located in front of the bowl?": ("relation", "in_front_of", "", "mug", "bowl"),
    "Is the box larger than the mug?": ("relation", "bigger_than", "", "box", "mug"),
    "Is the mug smaller than the box?": ("relation", "smaller_than", "", "mug", "box"),
    "Is the plate wider than the cup?": ("relation", "wider_than", "", "plate", "cup"),
    "Is the pen narrower than the book?": ("relation", "thinner_than", "", "pen", "book"),
    "Is the shelf higher than the table?": ("relation", "higher_than", "", "shelf", "table"),
    "Is the stool lower than the table?": ("relation", "lower_than", "", "stool", "table"),
    "Is the mug next to the bowl?": ("relation", "next_to", "", "mug", "bowl"),
    "Is the mug beside the bowl?": ("relation", "next_to", "", "mug", "bowl"),
    "Are the mug and the bowl next to each other?": ("relation", "next_to", "", "mug", "bowl"),
    "Does the cup sit on the box?": ("relation", "on_top_of", "", "cup", "box"),
    "Does the mug appear to be to the left of the bowl?": ("relation", "left_of", "", "mug", "bowl"),
    "Can you confirm that the mug is behind the bowl?": ("relation", "behind", "", "mug", "bowl"),
    "Is it true that the cup is on top of the box?": ("relation", "on_top_of", "", "cup", "box"),
    "Would you say the bottle is taller than the can?": ("relation", "taller_than", "", "bottle", "can"),
    "Is there a cup on the box?": ("relation", "on_top_of", "", "cup", "box"),
    "The mug is closer to the camera than the bowl, right?": ("relation", "closer_to_camera", "", "mug", "bowl"),
    "Can you tell me whether the mug is left of the bowl?": ("relation", "left_of", "", "mug", "bowl"),
    # choices
    "Which is taller, the bottle or the can?": ("choice", "taller_than", "", "bottle", "can"),
    "Which is closer to the camera, the mug or the bowl?": ("choice", "closer_to_camera", "", "mug", "bowl"),
    "Which object is bigger, the box or the mug?": ("choice", "bigger_than", "", "box", "mug"),
    "Which one is more to the left: the mug or the bowl?": ("choice", "left_of", "", "mug", "bowl"),
    "Which of the bottle and the can is taller?": ("choice", "taller_than", "", "bottle", "can"),
    "Between the mug and the bowl, which is closer?": ("choice", "closer_to_camera", "", "mug", "bowl"),
    "Is the bottle or the can taller?": ("choice", "taller_than", "", "bottle", "can"),
    "Which is the farthest, red mug or blue mug?": ("choice", "farther_from_camera", "", "red mug", "blue mug"),
    "Which appears higher, the lamp or the shelf?": ("choice", "higher_than", "", "lamp", "shelf"),
    "Which is wider, the plate or the bowl?": ("choice", "wider_than", "", "plate", "bowl"),
    # quantities between two objects
    "How far is the mug from the bowl?": ("quantity", "", "distance", "mug", "bowl"),
    "How far away is the mug from the bowl in meters?": ("quantity", "", "distance", "mug", "bowl"),
    "How far apart are the mug and the bowl?": ("quantity", "", "distance", "mug", "bowl"),
    "What is the distance between the mug and the bowl?": ("quantity", "", "distance", "mug", "bowl"),
    "What's the distance from the mug to the bowl?": ("quantity", "", "distance", "mug", "bowl"),
    "Measure the distance between mug_1 and mug_2.": ("quantity", "", "distance", "mug_1", "mug_2"),
    "What is the distance of the mug from the bowl?": ("quantity", "", "distance", "mug", "bowl"),
    "Tell me how far the mug is from the bowl.": ("quantity", "", "distance", "mug", "bowl"),
    "How far is it from the mug to the bowl?": ("quantity", "", "distance", "mug", "bowl"),
    "How close is the mug to the bowl?": ("quantity", "", "distance", "mug", "bowl"),
    "How many meters is the mug from the bowl?": ("quantity", "", "distance", "mug", "bowl"),
    "How many centimeters apart are the mug and the bowl?": ("quantity", "", "distance", "mug", "bowl"),
    "How much distance is there between the mug and the bowl?": ("quantity", "", "distance", "mug", "bowl"),
    "What is the gap between the mug and the bowl?": ("quantity", "", "gap", "mug", "bowl"),
    "What is the clearance between the mug and the bowl?": ("quantity", "", "gap", "mug", "bowl"),
    "How much space is there between the mug and the bowl?": ("quantity", "", "gap", "mug", "bowl"),
    "What is the horizontal distance between the mug and the bowl?":
        ("quantity", "", "horizontal_distance", "mug", "bowl"),
    "How far apart are the mug and the bowl horizontally?": ("quantity", "", "horizontal_distance", "mug", "bowl"),
    "What is the vertical distance between the lamp and the bowl?":
        ("quantity", "", "vertical_distance", "lamp", "bowl"),
    "How far apart are the lamp and the bowl vertically?": ("quantity", "", "vertical_distance", "lamp", "bowl"),
    "How much higher is the lamp than the bowl?": ("quantity", "higher_than", "vertical_distance", "lamp", "bowl"),
    "How much lower is the bowl than the lamp?": ("quantity", "lower_than", "vertical_distance", "bowl", "lamp"),
    "How much taller is the bottle than the can?": ("quantity", "taller_than", "height", "bottle", "can"),
    "How much narrower is the pen than the book?": ("quantity", "thinner_than", "width", "pen", "book"),
    "How high above the table is the lamp?": ("quantity", "higher_than", "vertical_distance", "lamp", "table"),
    "How far is the lamp above the bowl?": ("quantity", "higher_than", "vertical_distance", "lamp", "bowl"),
    # distance to the camera
    "How far is the mug from the camera?": ("quantity", "", "distance_to_camera", "mug", ""),
    "How far is the mug from you?": ("quantity", "", "distance_to_camera", "mug", ""),
    "How far from the camera is the mug?": ("quantity", "", "distance_to_camera", "mug", ""),
    "What is the distance from the camera to the mug?": ("quantity", "", "distance_to_camera", "mug", ""),
    "What is the distance of the mug from the camera?": ("quantity", "", "distance_to_camera", "mug", ""),
    "How close is the mug to the robot?": ("quantity", "", "distance_to_camera", "mug", ""),
    "What is the distance to the mug?": ("quantity", "", "distance_to_camera", "mug", ""),
    "How far away is the mug?": ("quantity", "", "distance_to_camera", "mug", ""),
    # extents
    "How tall is the bottle?": ("quantity", "", "height", "bottle", ""),
    "How wide is the box?": ("quantity", "", "width", "box", ""),
    "How deep is the drawer?": ("quantity", "", "depth", "drawer", ""),
    "Tell me how wide the box is.": ("quantity", "", "width", "box", ""),
    "What is the height of the bottle?": ("quantity", "", "height", "bottle", ""),
    "Please estimate the width of the red box in cm.": ("quantity", "", "width", "red box", ""),
    "What is the bottle's width?": ("quantity", "", "width", "bottle", ""),
    "How big is the gap between the mug and the bowl?": ("quantity", "", "gap", "mug", "bowl"),
    "How big is the box?": ("dimensions", "", "", "box", ""),
    "What are the dimensions of the box?": ("dimensions", "", "", "box", ""),
    "What size is the box?": ("dimensions", "", "", "box", ""),
    # listing, existence, location
    "What objects do you see?": ("list", "", "", "", ""),
    "What do you see?": ("list", "", "", "", ""),
    "What objects are there?": ("list", "", "", "", ""),
    "Which objects are visible?": ("list", "", "", "", ""),
    "List all the objects.": ("list", "", "", "", ""),
    "What is in the scene?": ("list", "", "", "", ""),
    "Describe the scene.": ("list", "", "", "", ""),
    "How many mugs are there?": ("list", "", "", "mugs", ""),
    "How many objects do you see?": ("list", "", "", "", ""),
    "Do you see a mug?": ("exists", "", "", "mug", ""),
    "Are there any red objects?": ("exists", "", "", "red objects", ""),
    "Where is the mug?": ("locate", "", "", "mug", ""),
    # scene queries, placement, thresholds, the support surface (issue 13)
    "What is on the box?": ("find", "on_top_of", "", "", "box"),
    "Which objects are on the table?": ("find", "on_top_of", "", "", "table"),
    "What is left of the bowl?": ("find", "left_of", "", "", "bowl"),
    "Which mugs are next to the bowl?": ("find", "next_to", "", "mugs", "bowl"),
    "List the objects on the table.": ("find", "on_top_of", "", "", "table"),
    "Which object is closest to the camera?": ("find", "", "", "", ""),
    "What is the nearest object to the mug?": ("find", "", "", "", "mug"),
    "What is the tallest mug?": ("find", "", "", "mug", ""),
    "Is there space to put a 10 cm box between the mug and the bowl?": ("placement", "between", "", "", "bowl"),
    "Does a 0.1 m cube fit between the mug and the bowl?": ("placement", "between", "", "", "bowl"),
    "Is there room for a 10 x 10 x 20 cm box to the left of the mug?": ("placement", "left_of", "", "", "mug"),
    "Can I put a 5x5x3cm box on the book?": ("placement", "on", "", "", "book"),
    "How wide is the gap between the mug and the bowl?": ("quantity", "", "gap", "mug", "bowl"),
    "Is the mug within 20 cm of the bowl?": ("threshold", "", "distance", "mug", "bowl"),
    "Is the mug within 1.5 m of the camera?": ("threshold", "", "distance_to_camera", "mug", ""),
    "Is the mug more than 30 cm away from the bowl?": ("threshold", "", "distance", "mug", "bowl"),
    "Is the bottle more than 5 cm taller than the can?": ("threshold", "", "taller", "bottle", "can"),
    "Is the mug near the table edge?": ("threshold", "", "distance_to_edge", "mug", "table"),
    "Is the mug within 10 cm of the edge of the table?": ("threshold", "", "distance_to_edge", "mug", "table"),
    "How far is the mug from the edge of the table?": ("quantity", "", "distance_to_edge", "mug", "table"),
    "How high is the box above the table?": ("quantity", "higher_than", "vertical_distance", "box", "table"),
}


@pytest.mark.parametrize("question", list(CASES))
def test_parse(question):
    kind, relation, quantity, subject, reference = CASES[question]
    q = parse(question)
    assert (q.kind, q.relation, q.quantity, q.subject, q.reference) == (kind, relation, quantity, subject,
                                                                         reference), q.template
    if kind == "choice":
        assert q.options == (subject, reference)
    assert q.question == question.strip()


@pytest.mark.parametrize("question,fields", [
    ("Which object is closest to the camera?", dict(order_by="distance_to_camera asc", limit=1)),
    ("What is the nearest object to the mug?", dict(order_by="distance_to_reference asc", limit=1)),
    ("Which object is the tallest?", dict(order_by="height desc", limit=1)),
    ("What is on the box?", dict(order_by="", limit=0)),
    ("Is there space to put a 10 cm box between the mug and the bowl?",
     dict(options=("mug", "bowl"), size=(0.1, 0.1, 0.1))),
    ("Is there room for a 10 x 5 x 20 cm box behind the mug?", dict(options=("mug",), size=(0.1, 0.05, 0.2))),
    ("Can I put a 100 x 50 mm box on the book?", dict(size=(0.1, 0.05, 0.05))),
    ("Is the mug within 20 cm of the bowl?", dict(comparison="less_than", threshold_m=0.2)),
    ("Is the mug more than 1.5 m from the bowl?", dict(comparison="more_than", threshold_m=1.5)),
    ("Is the bottle at least 2 inches taller than the can?", dict(comparison="more_than", threshold_m=0.0508)),
    ("Is the mug near the table edge?", dict(comparison="near")),
])
def test_scene_query_fields(question, fields):
    q = parse(question)
    for name, value in fields.items():
        got = getattr(q, name)
        assert (got == pytest.approx(value)) if isinstance(value, (float, tuple)) and name != "options" \
            else got == value, (name, got)


@pytest.mark.parametrize("question", ["Is there space to put a box between the mug and the bowl?",
                                      "Is the mug within 20 of the bowl?", "Which is the tallest, the mug?"])
def test_scene_questions_without_their_numbers_are_not_misread(question):
    try:
        q = parse(question)
    except QueryError:
        return
    assert q.kind not in ("placement", "threshold"), q


def test_every_template_is_exercised_and_its_example_parses_with_it():
    used = {parse(question).template for question in CASES}
    names = [t.name for t in TEMPLATES]
    assert len(names) == len(set(names)) and len(names) >= 30
    assert used == set(names)
    for template in TEMPLATES:
        assert parse(template.example).template == template.name, template.example


@pytest.mark.parametrize("question", ["", "   ", "Hello there!", "Is the mug levitating toward the bowl?",
                                      "How far?", "Which is taller?", "Is the mug to the left of?",
                                      "Which is taller, the mug or the mug?", "x" * 600])
def test_unparseable_questions_raise_helpful_errors(question):
    with pytest.raises(QueryError) as err:
        parse(question)
    msg = str(err.value)
    assert ("try e.g." in msg) or ("too long" in msg)


def test_relation_hint_and_type_errors():
    with pytest.raises(QueryError, match="no known relation found"):
        parse("Is the mug inside the bowl?")
    with pytest.raises(QueryError, match="must be a string"):
        parse(None)


def test_normalisation():
    assert normalise_question("  Hey, can you tell me what's the DISTANCE to the mug, please?? ") == \
        "what is the distance to the mug"


@pytest.mark.parametrize("metres,text", [(0.004, "4 mm"), (0.035, "3.5 cm"), (0.05, "5 cm"), (0.34, "34 cm"),
                                         (0.999, "1 m"), (1.2, "1.2 m"), (1.256, "1.26 m"), (12.34, "12.3 m"),
                                         (-0.34, "34 cm")])
def test_human_units(metres, text):
    assert format_length(metres) == text


def test_contractions_are_expanded_only_as_whole_words():
    assert normalise_question("What's the height of the biscuit's box?") == "what is the height of the biscuit's box"
    assert normalise_question("Where's the habit's mug?") == "where is the habit's mug"
    q = parse("How tall is the biscuit's box?")
    assert (q.kind, q.quantity, q.subject) == ("quantity", "height", "biscuit's box")
    q = parse("Is the biscuit's box to the left of the bowl?")
    assert (q.relation, q.subject, q.reference) == ("left_of", "biscuit's box", "bowl")


@pytest.mark.parametrize("question,subject,phrase,reference", [
    ("How far is the mug to the left of the bowl?", "mug", "to the left of", "bowl"),
    ("How far is the mug left of the bowl?", "mug", "to the left of", "bowl"),
    ("How far to the left of the bowl is the mug?", "mug", "to the left of", "bowl"),
    ("How far is the left mug to the right of the bowl?", "left mug", "to the right of", "bowl"),
    ("How many cm is the cup behind the box?", "cup", "behind", "box"),
    ("How far is the cup in front of the box?", "cup", "in front of", "box"),
])
def test_directional_offset_questions_are_refused_not_misread(question, subject, phrase, reference):
    with pytest.raises(QueryError) as err:
        parse(question)
    msg = str(err.value)
    assert "not a measured quantity" in msg
    assert f"'Is the {subject} {phrase} the {reference}?'" in msg
    assert f"'How far is the {subject} from the {reference}?'" in msg


@pytest.mark.parametrize("question,subject,reference", [
    ("How far is the mug from the left bowl?", "mug", "left bowl"),
    ("How far is the left mug from the bowl?", "left mug", "bowl"),
    ("How far is the mug to the bowl?", "mug", "bowl"),
])
def test_direction_words_inside_names_still_parse(question, subject, reference):
    q = parse(question)
    assert (q.kind, q.quantity, q.subject, q.reference) == ("quantity", "distance", subject, reference)

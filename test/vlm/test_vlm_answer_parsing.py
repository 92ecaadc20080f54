"""Reading a VLM's prose as a template answer: yes/no at the start, a length with its unit in metres."""
import pytest

from spatial_vlm_ros.vlm.answer_parsing import Reading, parse_length, parse_yes_no, read_answer

INCH, FOOT = 0.0254, 0.3048


@pytest.mark.parametrize("text, value", [
    ("0.3 m", 0.3), ("30 cm", 0.30), ("30cm", 0.30), ("roughly 300 mm", 0.30), ("about 12 inches", 12 * INCH),
    ("It is 12 in.", 12 * INCH), ("1.5 feet", 1.5 * FOOT), ("2 ft", 2 * FOOT), ("0.35 metres", 0.35),
    ("They are 1.2 meters apart.", 1.2), ("about a metre", 1.0), ("half a metre apart", 0.5),
    ("two feet", 2 * FOOT), ("20-30 cm", 0.25), ("between 20 and 30 cm", 0.25), ("one or two feet", 1.5 * FOOT),
    ("5 feet 3 inches", 5 * FOOT + 3 * INCH), ("5'3\"", 5 * FOOT + 3 * INCH), ("1 m 20 cm", 1.2),
    ("Approximately 0.35 metres (35 cm).", 0.35),          # the first length, not both added
    ("It is 2 m, or 200 cm", 2.0), ("mug_1 is 0.4 m from bowl_2", 0.4), ("-0.05 m", 0.05),
    ("0.35", 0.35), ("about 0.35.", 0.35),                  # a bare number is metres only as the whole answer
])
def test_lengths_in_usual_units_are_read_in_metres(text, value):
    assert parse_length(text) == pytest.approx(value)


@pytest.mark.parametrize("text", [
    "", "I am not sure", "There are 2 in the box", "The mug has 3 handles", "0,3 m", "xq#2 zz", "far away",
    "mug_2 m",                      # the digit belongs to a name
])
def test_text_without_a_length_is_not_read(text):
    assert parse_length(text) is None


@pytest.mark.parametrize("text, yes", [
    ("Yes.", True), ("yes, the mug is to the left of the bowl", True), ("Yeah", True), ("Correct.", True),
    ("Answer: Yes", True), ("I think yes", True), ("Probably yes (it is close).", True), ("**Yes**", True),
    ("the answer is no", False), ("No.", False), ("no, it is not", False), ("Nope", False),
    ("Probably not.", False), ("Not at all", False), ("Incorrect", False),
])
def test_yes_and_no_at_the_start_are_read(text, yes):
    assert parse_yes_no(text) is yes


@pytest.mark.parametrize("text", ["", "Yesterday", "Not sure", "The mug is not to the left", "It is yes",
                                  "Maybe", "Right of the bowl", "0.3 m"])
def test_other_texts_are_not_read_as_yes_or_no(text):
    assert parse_yes_no(text) is None


def test_read_answer_reads_the_template_kind_only():
    assert read_answer("yes_no", "No, it is 30 cm away.") == Reading(True, yes=False)
    assert read_answer("metric", "No, it is 30 cm away.") == Reading(True, value=pytest.approx(0.3))
    assert read_answer("metric", "Yes.") == Reading(False)
    assert read_answer("yes_no", "about 30 cm") == Reading(False)
    for kind in ("choice", "free"):
        assert read_answer(kind, "Yes, 30 cm.") == Reading(False)

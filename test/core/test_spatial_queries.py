"""The facade the node calls: answers from one memory snapshot; bad requests give success=False."""
import numpy as np
import pytest
from reasoning_fixtures import TABLE_Z, box_surface, pitched_gravity

from spatial_vlm_ros.core.memory import SceneMemory
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.core.observation import Observation
from spatial_vlm_ros.core.spatial_queries import SpatialQueries, metric_confidence

G = pitched_gravity(35.0)


def _obs(label, x, y, size, bottom=TABLE_Z, color=""):
    s = np.asarray(size, float)
    c_g = np.array([x, y, bottom + s[2] / 2])
    pts = G.to_camera(box_surface(c_g, s, spacing=0.01))
    return Observation(label=label, score=0.8, center=G.to_camera(c_g), size=s, box_min=c_g - s / 2,
                       box_max=c_g + s / 2, points=pts, n_pixels=len(pts), color_name=color)


@pytest.fixture()
def queries():
    memory = SceneMemory()
    memory.update([
        _obs("mug", -0.20, 0.70, (0.08, 0.08, 0.10), color="red"),
        _obs("mug", 0.30, 0.75, (0.08, 0.08, 0.10), color="blue"),
        _obs("bowl", 0.05, 1.00, (0.16, 0.16, 0.07), color="white"),
        _obs("bottle", 0.40, 1.10, (0.07, 0.07, 0.25)),
        _obs("can", 0.55, 1.10, (0.066, 0.066, 0.12)),
        _obs("box", -0.30, 1.20, (0.30, 0.25, 0.20)),
        _obs("cup", -0.30, 1.20, (0.08, 0.08, 0.09), bottom=TABLE_Z + 0.20),
    ], 1.0, G)
    return SpatialQueries(memory, DepthNoiseModel())


def test_list_objects(queries):
    assert [o.id for o in queries.list_objects("")] == ["bottle_1", "bowl_1", "box_1", "can_1", "cup_1", "mug_1",
                                                       "mug_2"]
    assert [o.id for o in queries.list_objects("mugs")] == ["mug_1", "mug_2"]
    assert [o.id for o in queries.list_objects("blue mug")] == ["mug_2"]
    assert queries.list_objects("sofa") == [] and queries.list_objects(7) == []


def test_get_relation(queries):
    r = queries.get_relation("red mug", "left", "bowl")
    assert r.success and r.holds and r.confidence > 0.99 and r.relation == "left_of"
    assert r.answer == "Yes, the red mug is to the left of the bowl."
    assert (r.subject_id, r.reference_id) == ("mug_1", "bowl_1") and "margin" in r.message
    r = queries.get_relation("cup", "on top of", "box")
    assert r.success and r.holds and r.answer == "Yes, the cup is on top of the box."
    r = queries.get_relation("box", "on_top_of", "cup")
    assert r.success and not r.holds and r.answer == "No, the box is not on top of the cup."


@pytest.mark.parametrize("subject,relation,reference,fragment", [
    ("mug", "left_of", "bowl", "'mug' is ambiguous: mug_1 (red"),
    ("sofa", "left_of", "bowl", "no object matches 'sofa'; known objects: bottle_1"),
    ("mug_1", "inside", "bowl", "unknown relation 'inside'; known relations"),
    ("mug_1", "left_of", "mug_1", "same object"),
    ("", "left_of", "bowl", "subject is empty"),
    ("mug_1", "", "bowl", "relation is empty"),
    (None, "left_of", "bowl", "subject is empty"),
    (3, "left_of", "bowl", "subject must be a string"),
])
def test_get_relation_bad_requests(queries, subject, relation, reference, fragment):
    r = queries.get_relation(subject, relation, reference)
    assert not r.success and fragment in r.message and r.answer == ""


def test_measure(queries):
    m = queries.measure("distance", "mug_1", "mug_2")
    assert m.success and m.value == pytest.approx(np.hypot(0.5, 0.05)) and m.uncertainty > 0
    assert m.answer == "The red mug is 50 cm from the blue mug."
    m = queries.measure("height", "bottle", "")
    assert m.success and m.value == pytest.approx(0.25) and m.answer == "The bottle is 25 cm tall."
    m = queries.measure("gap", "cup", "box")
    assert m.success and m.value < 0.01


@pytest.mark.parametrize("quantity,subject,reference,fragment", [
    ("volume", "bottle", "", "unknown quantity 'volume'"),
    ("distance", "bottle", "", "needs a reference"),
    ("width", "bottle", "can", "leave the reference empty"),
    ("height", "mug", "", "ambiguous"),
    ("distance", "bottle", "sofa", "no object matches 'sofa'"),
    (None, "bottle", "", "quantity is empty"),
])
def test_measure_bad_requests(queries, quantity, subject, reference, fragment):
    m = queries.measure(quantity, subject, reference)
    assert not m.success and fragment in m.message


def test_ask_yes_no(queries):
    a = queries.ask("Is the red mug to the left of the bowl?")
    assert a.success and a.kind == "yes_no" and a.yes and a.confidence > 0.99
    a = queries.ask("Is the box on top of the cup?")
    assert a.success and a.kind == "yes_no" and not a.yes and a.answer.startswith("No, ")


def test_ask_choice(queries):
    a = queries.ask("Which is taller, the bottle or the can?")
    assert a.success and a.kind == "choice" and a.answer == "The bottle is taller than the can."
    a = queries.ask("Which is closer to the camera, the bowl or the red mug?")
    assert a.answer == "The red mug is closer to the camera than the bowl." and a.message.startswith("mug_1")
    a = queries.ask("Which is on top, the bottle or the can?")
    assert a.success and a.answer.startswith("Neither")


def test_ask_metric(queries):
    a = queries.ask("How far apart are the red mug and the blue mug?")
    assert a.success and a.kind == "metric" and a.value == pytest.approx(np.hypot(0.5, 0.05))
    assert 0.99 < a.confidence <= 1.0
    a = queries.ask("How tall is the bottle?")
    assert a.value == pytest.approx(0.25) and a.answer == "The bottle is 25 cm tall."
    a = queries.ask("How much taller is the can than the bottle?")
    assert a.value == pytest.approx(-0.13) and a.answer == "The can is not taller than the bottle; it is 13 cm " \
                                                           "shorter."
    a = queries.ask("How much higher is the cup than the box?")
    assert a.value == pytest.approx(0.245 - 0.1) and a.answer == "The cup is 15 cm higher than the box."
    a = queries.ask("How far is the bottle from the camera?")
    assert a.success and a.value == pytest.approx(np.hypot(np.hypot(0.4, 1.1), 0.5 - 0.125))


def test_ask_list_exists_locate(queries):
    a = queries.ask("What objects do you see?")
    assert a.success and a.kind == "free" and a.value == 7 and a.answer.startswith("I see 7 objects: a bottle")
    a = queries.ask("How many mugs are there?")
    assert a.value == 2 and a.answer == "I see 2 mugs: a red mug (mug_1) and a blue mug (mug_2)."
    a = queries.ask("Do you see a sofa?")
    assert a.success and a.kind == "yes_no" and not a.yes and a.answer == "No, I do not see any sofas."
    a = queries.ask("Is there a bowl?")
    assert a.yes and a.confidence == pytest.approx(0.8)
    a = queries.ask("How big is the box?")
    assert a.success and a.answer == "The box is 30 cm wide, 25 cm deep and 20 cm tall."
    a = queries.ask("Where is the bottle?")
    assert a.success and "to the right" in a.answer and "below the camera" in a.answer


@pytest.mark.parametrize("question,fragment", [
    ("", "empty question"), ("Sing me a song", "could not parse"), (None, "must be a string"),
    ("Is the mug to the left of the bowl?", "ambiguous"), ("How tall is the sofa?", "no object matches"),
    ("Is the mug_1 inside the bowl?", "no known relation"),
])
def test_ask_bad_requests(queries, question, fragment):
    a = queries.ask(question)
    assert not a.success and fragment in a.message


def test_empty_memory_answers_cleanly():
    q = SpatialQueries(SceneMemory())
    assert q.list_objects("") == []
    r = q.get_relation("mug", "left_of", "bowl")
    assert not r.success and "scene is empty" in r.message
    a = q.ask("What objects do you see?")
    assert a.success and a.answer == "I do not see any objects."


def test_internal_errors_become_failures(queries, monkeypatch):
    def boom(*_args, **_kwargs):
        raise RuntimeError("kaboom")
    monkeypatch.setattr(queries.memory, "snapshot", boom)
    r = queries.get_relation("bottle", "left_of", "can")
    assert not r.success and "internal error: RuntimeError: kaboom" in r.message


def test_metric_confidence():
    assert metric_confidence(1.0, 0.0) == 1.0
    assert metric_confidence(0.0, 0.01) == 0.0
    assert metric_confidence(0.4, 0.1) == pytest.approx(0.6826895, abs=1e-6)   # +-25% = +-1 sigma


def test_not_understood_is_reported_apart_from_other_failures(queries):
    from spatial_vlm_ros.core.spatial_queries import NOT_UNDERSTOOD
    a = queries.ask("Sing me a song")
    assert not a.success and not a.recognised and a.kind == "" and a.message.startswith(NOT_UNDERSTOOD + ": ")
    b = queries.ask("Is the sofa to the left of the mug?")
    assert not b.success and b.recognised and b.kind == "" and not b.message.startswith(NOT_UNDERSTOOD)
    c = queries.ask("Which objects are on the table?")      # no support surface measured with a static up
    assert not c.success and c.recognised and "no object matches 'table'" in c.message

"""An answer about an object that the newest frame did not see (kept in memory from earlier frames) says so."""
import re

import pytest
from reasoning_fixtures import make_observation, pitched_gravity

from spatial_vlm_ros.core.memory import SceneMemory
from spatial_vlm_ros.core.spatial_queries import SpatialQueries

G = pitched_gravity(30.0)
MUG = ("mug", (-0.20, 0.10, 0.90), (0.08, 0.08, 0.10))
BOWL = ("bowl", (0.15, 0.12, 1.00), (0.16, 0.16, 0.07))
UNSEEN = "mug_1 not in the latest frame: not seen for 0.8 s (last seen at 1.000 s), kept from memory"


@pytest.fixture()
def queries():
    memory = SceneMemory()
    memory.update([make_observation(*MUG, G), make_observation(*BOWL, G)], 1.0, G)
    memory.update([make_observation(*BOWL, G)], 1.8, G)                     # the mug is out of view
    assert [o.id for o in memory.snapshot().objects] == ["bowl_1", "mug_1"]
    return SpatialQueries(memory)


@pytest.mark.parametrize("ask", [
    lambda q: q.get_relation("mug", "left of", "bowl"),
    lambda q: q.get_relation("bowl", "right of", "mug"),
    lambda q: q.measure("distance", "mug", "bowl"),
    lambda q: q.measure("height", "mug"),
    lambda q: q.ask("Is the mug to the left of the bowl?"),
    lambda q: q.ask("How far is the mug from the bowl?"),
    lambda q: q.ask("Which is closer to the camera, the mug or the bowl?"),
    lambda q: q.ask("Where is the mug?"),
    lambda q: q.ask("Is there a mug?"),
])
def test_answers_about_an_unseen_object_say_so(queries, ask):
    a = ask(queries)
    assert a.success, a.message
    assert UNSEEN in a.message, a.message
    assert "bowl_1 not" not in a.message                # the bowl is in the newest frame


def test_answers_about_seen_objects_carry_no_note(queries):
    for a in (queries.measure("height", "bowl"), queries.ask("How tall is the bowl?")):
        assert a.success and "latest frame" not in a.message, a.message


def test_the_note_follows_the_newest_frame(queries):
    queries.memory.update([make_observation(*MUG, G), make_observation(*BOWL, G)], 2.0, G)   # back in view
    assert "latest frame" not in queries.measure("height", "mug").message
    queries.memory.update([make_observation(*MUG, G)], 2.5, G)
    message = queries.get_relation("mug", "left of", "bowl").message
    assert re.search(r"bowl_1 not in the latest frame: not seen for 0\.5 s \(last seen at 2\.000 s\)", message)
    assert "mug_1 not" not in message

"""One-sentence natural answers in SpatialVLM's style, with lengths in human units ("34 cm", "1.2 m").

Objects are named by ``naming.display_name`` ("the mug", "the red mug", "the mug (mug_2)"); the caller passes
the names in, so this module only phrases.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .gravity_frame import GravityFrame
from .observation import TrackedObject
from .relations import RELATIONS, RelationResult
from .scene import Scene

UNCERTAIN_BELOW = 0.75      # confidence under which a yes/no answer is hedged

_EXTENT_ADJECTIVES = {"width": "wide", "height": "tall", "depth": "deep"}
# relation of a signed difference -> (word when the difference is positive, word when negative)
DIFFERENCE_WORDS = {
    "taller_than": ("taller", "shorter"), "shorter_than": ("shorter", "taller"),
    "wider_than": ("wider", "narrower"), "thinner_than": ("narrower", "wider"),
    "higher_than": ("higher", "lower"), "lower_than": ("lower", "higher"),
}


def format_length(metres: float) -> str:
    """Human units: "4 mm", "3.5 cm", "34 cm", "1.2 m", "1.25 m", "12 m"."""
    m = abs(float(metres))
    if not math.isfinite(m):
        return "an unknown distance"
    if m < 0.01:
        return f"{m * 1000:.0f} mm"
    if m < 0.1:
        return f"{m * 100:.1f}".rstrip("0").rstrip(".") + " cm"
    if m < 1.0:
        cm = round(m * 100)
        return "1 m" if cm >= 100 else f"{cm:.0f} cm"
    if m < 10.0:
        return f"{m:.2f}".rstrip("0").rstrip(".") + " m"
    return f"{m:.1f}".rstrip("0").rstrip(".") + " m"


def sentence(text: str) -> str:
    """Capitalise the first letter and end with a full stop."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def relation_answer(result: RelationResult, subject: str, reference: str) -> str:
    """"Yes, the mug is to the left of the bowl." / "No, ..." / hedged when the confidence is low."""
    phrase = RELATIONS[result.relation].phrase
    if result.holds:
        body = f"{subject} is {phrase} {reference}"
        lead = "Yes" if result.confidence >= UNCERTAIN_BELOW else "Probably yes (it is close)"
    else:
        body = f"{subject} is not {phrase} {reference}"
        lead = "No" if result.confidence >= UNCERTAIN_BELOW else "Probably not (it is close)"
    return sentence(f"{lead}, {body}")


def choice_answer(relation: str, winner: str | None, loser: str | None, options: Sequence[str] = ()) -> str:
    """"The bottle is taller than the can." or, when neither option satisfies the relation, says so."""
    phrase = RELATIONS[relation].phrase
    if winner is None:
        a, b = (list(options) + ["the first object", "the second object"])[:2]
        return sentence(f"Neither: {a} is not {phrase} {b}, and {b} is not {phrase} {a}")
    return sentence(f"{winner} is {phrase} {loser}")


def quantity_answer(quantity: str, value_m: float, subject: str, reference: str = "") -> str:
    """One sentence for a measured quantity (``value_m`` >= 0, metres)."""
    v = format_length(value_m)
    if quantity == "distance":
        return sentence(f"{subject} is {v} from {reference}")
    if quantity == "gap":
        if value_m <= 0.0:
            return sentence(f"{subject} and {reference} are touching (no gap between them)")
        return sentence(f"the gap between {subject} and {reference} is {v}")
    if quantity == "horizontal_distance":
        return sentence(f"{subject} is {v} from {reference} horizontally")
    if quantity == "vertical_distance":
        return sentence(f"{subject} and {reference} are {v} apart vertically")
    if quantity == "distance_to_camera":
        return sentence(f"{subject} is {v} from the camera")
    if quantity in _EXTENT_ADJECTIVES:
        return sentence(f"{subject} is {v} {_EXTENT_ADJECTIVES[quantity]}")
    return sentence(f"the {quantity.replace('_', ' ')} of {subject} is {v}")


def difference_answer(relation: str, signed_m: float, subject: str, reference: str) -> str:
    """"The bottle is 10 cm taller than the can." / "The bottle is not taller than the can; it is 3 cm shorter.\""""
    more, less = DIFFERENCE_WORDS[relation]
    v = format_length(signed_m)
    if signed_m >= 0:
        return sentence(f"{subject} is {v} {more} than {reference}")
    return sentence(f"{subject} is not {more} than {reference}; it is {v} {less}")


def list_answer(names: Sequence[str], what: str = "") -> str:
    """"I see 3 objects: the red mug (mug_1), the blue mug (mug_2) and the bowl (bowl_1)." """
    noun = what or "object"
    if not names:
        return sentence(f"I do not see any {_plural(noun)}")
    count = f"{len(names)} {noun if len(names) == 1 else _plural(noun)}"
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return sentence(f"I see {count}: {listed}")


def exists_answer(names: Sequence[str], what: str) -> str:
    if not names:
        return sentence(f"No, I do not see any {_plural(what)}")
    return sentence(f"Yes, I see {len(names)} {what if len(names) == 1 else _plural(what)}: "
                    + (names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]))


def dimensions_answer(obj: TrackedObject, name: str) -> str:
    """"The box is 30 cm wide, 25 cm deep and 20 cm tall." (gravity-aligned box)"""
    w, d, h = (format_length(v) for v in obj.size)
    return sentence(f"{name} is {w} wide, {d} deep and {h} tall")


def locate_answer(obj: TrackedObject, name: str, scene: Scene) -> str:
    """Where ``obj`` is relative to the camera, in the gravity frame (right/left, ahead, above/below)."""
    g = scene.center_gravity(obj)
    rng = float(np.linalg.norm(obj.center))
    side = f"{format_length(g[0])} to the {'right' if g[0] >= 0 else 'left'}"
    ahead = f"{format_length(g[1])} {'ahead' if g[1] >= 0 else 'behind'}"
    level = f"{format_length(g[2])} {'above' if g[2] >= 0 else 'below'} the camera"
    return sentence(f"{name} is {format_length(rng)} from the camera: {side}, {ahead} and {level}")


def up_note(gravity: GravityFrame) -> str:
    """"" when up was measured, else where it was assumed from: "up was assumed (level camera), not measured
    from a support plane"."""
    if not gravity.assumed:
        return ""
    return f"up was assumed ({gravity.up_from}), not measured from a support plane"


def with_up_note(text: str, gravity: GravityFrame) -> str:
    """``text`` followed by ``up_note`` as its own sentence when up was assumed."""
    note = up_note(gravity)
    return f"{text} {sentence(note)}" if note else text


def unseen_note(obj: TrackedObject, stamp: float) -> str:
    """"" when ``obj`` was seen in the frame stamped ``stamp`` (s, the newest), else "mug_1 not in the latest
    frame: not seen for 0.8 s (last seen at 12.300 s), kept from memory"."""
    if obj.last_seen >= stamp:
        return ""
    return (f"{obj.id} not in the latest frame: not seen for {stamp - obj.last_seen:.1f} s (last seen at "
            f"{obj.last_seen:.3f} s), kept from memory")


def _plural(noun: str) -> str:
    if noun.endswith("s"):
        return noun
    if noun.endswith(("x", "ch", "sh")):
        return noun + "es"
    if len(noun) > 1 and noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"

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


def _listed(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


#: order key -> (superlative when descending, when ascending); "{ref}" is the reference's name
ORDER_PHRASES = {
    "distance_to_camera": ("the farthest from the camera", "the closest to the camera"),
    "distance_to_reference": ("the farthest from {ref}", "the nearest to {ref}"),
    "gap_to_reference": ("the farthest from {ref}", "the nearest to {ref}"),
    "horizontal_distance_to_reference": ("the farthest from {ref}", "the nearest to {ref}"),
    "height": ("the tallest", "the shortest"), "width": ("the widest", "the narrowest"),
    "depth": ("the deepest", "the shallowest"), "volume": ("the biggest", "the smallest"),
    "elevation": ("the highest", "the lowest"), "camera_x": ("the rightmost", "the leftmost"),
    "distance_to_edge": ("the farthest from the edge", "the closest to the edge"),
}


def find_answer(names: Sequence[str], values: Sequence[float], relation: str = "", reference: str = "",
                order_by: str = "", descending: bool = False, limit: int = 0, label: str = "") -> str:
    """"The lemon is on top of the box." / "Nothing is to the left of the bowl." / "The mug is the closest to
    the camera (62 cm)." / "The bottle, the mug and the can (the tallest first).\""""
    noun = label or "object"
    what = f"{relation and RELATIONS[relation].phrase} {reference}".strip()
    order = ORDER_PHRASES[order_by][0 if descending else 1].format(ref=reference) if order_by else ""
    if not names:
        if relation:
            return sentence(f"nothing{' like that' if label else ''} is {what}")
        return sentence(f"I do not see any {_plural(noun)}")
    if order and limit == 1 and len(names) == 1:
        unit = "" if order_by == "volume" else f" ({format_length(values[0])})"
        return sentence(f"{names[0]} is {order}{(' of those ' + what) if relation else ''}{unit}")
    verb = "is" if len(names) == 1 else "are"
    body = f"{_listed(names)} {verb} {what}" if relation else _listed(names)
    return sentence(body + (f" ({order} first)" if order and len(names) > 1 else ""))


def size_phrase(size: Sequence[float]) -> str:
    """"a 10 cm box" (a cube) or "a 10 x 5 x 8 cm box"."""
    w, d, h = (float(v) for v in size)
    if abs(w - d) < 1e-9 and abs(d - h) < 1e-9:
        return f"a {format_length(w)} box"
    return f"a {format_length(w)} x {format_length(d)} x {format_length(h)} box"


def placement_answer(fits: bool, confidence: float, size: Sequence[float], where: str, free_width_m: float,
                     margin_m: float, limiting: str = "") -> str:
    """"Yes, a 10 cm box fits between the mug and the bowl: 14 cm free, 2 cm to spare on each side." """
    box = size_phrase(size)
    if fits:
        lead = "Yes" if confidence >= UNCERTAIN_BELOW else "Probably yes (it is close)"
        spare = format_length(margin_m) if math.isfinite(margin_m) else "plenty of room"
        return sentence(f"{lead}, {box} fits {where}: {format_length(free_width_m)} free, {spare} to spare")
    lead = "No" if confidence >= UNCERTAIN_BELOW else "Probably not (it is close)"
    why = f" ({limiting} in the way)" if limiting and limiting not in ("nothing", "no support") else ""
    if limiting == "no support":
        return sentence(f"{lead}, nothing supports {box} {where}")
    return sentence(f"{lead}, {box} does not fit {where}: only {format_length(free_width_m)} free{why}")


def threshold_answer(holds: bool, confidence: float, subject: str, comparison_phrase: str, value_text: str) -> str:
    """"Yes, the mug is within 20 cm of the bowl (it is 15 cm away)." / "No, ... (...)"."""
    if holds:
        lead = "Yes" if confidence >= UNCERTAIN_BELOW else "Probably yes (it is close)"
        return sentence(f"{lead}, {subject} is {comparison_phrase} ({value_text})")
    lead = "No" if confidence >= UNCERTAIN_BELOW else "Probably not (it is close)"
    return sentence(f"{lead}, {subject} is not {comparison_phrase} ({value_text})")


def height_above_answer(gap_m: float, sigma_m: float, subject: str, surface: str) -> str:
    """"The lemon is 20 cm above the table." / "The box rests on the table." (its bottom within two sigma, at
    least 5 mm, of the surface's top)."""
    if abs(gap_m) <= max(0.005, 2.0 * sigma_m):
        return sentence(f"{subject} rests on {surface} (its bottom is {format_length(gap_m)} from the top)")
    if gap_m > 0:
        return sentence(f"{subject} is {format_length(gap_m)} above {surface}")
    return sentence(f"the bottom of {subject} is {format_length(gap_m)} below the top of {surface}")

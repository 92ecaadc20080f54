"""Parse SpatialVLM-style template questions into structured queries.

``TEMPLATES`` is one ordered table of regular expressions (first match wins) with placeholders:
``{A}``/``{B}`` object phrases, ``{REL}`` any relation phrase of ``relations.ALIASES``, ``{CMP}`` a comparative
of ``CHOICE_WORDS`` ("taller", "closer to the camera"), ``{CAM}`` the camera ("the camera", "you", "the robot").
A question is lower-cased, stripped of punctuation, contractions (whole words: "what's"), politeness ("please",
"can you tell me") and unit requests ("in metres") before matching. Kinds of query:

- ``relation``: yes/no, "Is the mug to the left of the bowl?"
- ``choice``: "Which is taller, the bottle or the can?" (``options`` = the two phrases)
- ``quantity``: "How far is the mug from the bowl?"; with ``relation`` set for signed differences
  ("How much higher is A than B?" -> vertical_distance + higher_than, "How much taller ..." -> height + taller_than)
- ``list``: "What objects do you see?", "How many mugs are there?" (``subject`` = optional filter)
- ``exists``: "Do you see a mug?"; ``locate``: "Where is the mug?"; ``dimensions``: "How big is the box?"
- ``find``: scene queries (``core.scene_queries``), "What is on the box?", "Which objects are on the table?",
  "Which object is closest to the camera?", "What is the nearest object to the mug?" (``relation``,
  ``reference``, ``order_by``, ``limit``; ``subject`` = an optional label filter)
- ``placement``: "Is there space to put a 10 cm box between the mug and the bowl?" (``relation`` = the
  ``core.placement`` location, ``options`` = the reference phrases, ``size`` = w, d, h metres)
- ``threshold``: "Is the mug within 20 cm of the bowl?", "Is the bottle more than 5 cm taller than the can?",
  "Is the mug near the table edge?" (``quantity`` = a quantity or a ``thresholds.DIFFERENCES`` word,
  ``comparison``, ``threshold_m``)
- ``quantity`` ``distance_to_edge`` (not a ``QUANTITIES`` entry): "How far is the mug from the table edge?"
  (``reference`` = the surface)

"How far is the mug to the left of (behind, ...) the bowl?" asks for an offset along one direction, which no
quantity measures: it is refused with a ``QueryError`` naming the questions that can be answered.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import QueryError
from .quantities import QUANTITIES
from .relations import ALIASES as RELATION_ALIASES
from .relations import RELATIONS
from .scene_queries import SUPERLATIVES
from .thresholds import DIFFERENCES

MAX_QUESTION_CHARS = 500
KINDS = ("relation", "choice", "quantity", "list", "exists", "locate", "dimensions", "find", "placement", "threshold")
EDGE_QUANTITY = "distance_to_edge"      # the quantity of "how far is A from the table edge" (support_surface)


class UnrecognisedQuestion(QueryError):
    """No template matches the (non-empty, not too long) question: it is not a template question, though it
    may be a sensible free-form one (the ROS node hands such questions to a VLM when one is configured)."""


@dataclass(frozen=True)
class Query:
    """A parsed question. ``subject``/``reference``/``options`` are object phrases (see ``naming.resolve``)."""

    kind: str                       # one of KINDS
    relation: str = ""              # canonical relation name (relation, choice, signed quantity)
    quantity: str = ""              # canonical quantity name (quantity)
    subject: str = ""
    reference: str = ""
    options: tuple[str, ...] = ()   # choice: the two candidate phrases
    question: str = ""              # the original text
    template: str = ""              # name of the template that matched
    order_by: str = ""              # find: order key of ``scene_queries.ORDER_KEYS`` ("" = none)
    limit: int = 0                  # find: at most this many objects (0 = all)
    comparison: str = ""            # threshold: "less_than" or "more_than"
    threshold_m: float = 0.0        # threshold: metres
    size: tuple[float, ...] = ()    # placement: (w, d, h) metres


# comparative (as in "which is <cmp>, A or B") -> relation
CHOICE_WORDS: dict[str, str] = {}
for _rel, _words in {
    "taller_than": ("taller", "tallest"),
    "shorter_than": ("shorter", "shortest", "less tall"),
    "bigger_than": ("bigger", "larger", "biggest", "largest", "greater in size"),
    "smaller_than": ("smaller", "smallest", "tinier", "tiniest"),
    "wider_than": ("wider", "broader", "widest", "broadest"),
    "thinner_than": ("thinner", "narrower", "thinnest", "narrowest", "slimmer"),
    "higher_than": ("higher", "higher up", "highest", "more elevated", "positioned higher"),
    "lower_than": ("lower", "lower down", "lowest", "positioned lower"),
    "closer_to_camera": ("closer", "nearer", "closer to the camera", "nearer to the camera", "closer to you",
                         "nearer to you", "closest", "nearest", "closest to the camera", "nearest to the camera",
                         "closest to you", "nearest to you", "closer to me", "closest to me"),
    "farther_from_camera": ("farther", "further", "farther away", "further away", "farther from the camera",
                            "further from the camera", "farthest", "furthest", "farthest from the camera",
                            "furthest from the camera", "farthest away", "furthest away", "more distant",
                            "farther from you", "further from you"),
    "left_of": ("more to the left", "further left", "further to the left", "farther left", "on the left",
                "to the left", "leftmost", "more on the left", "on the left side"),
    "right_of": ("more to the right", "further right", "further to the right", "farther right", "on the right",
                 "to the right", "rightmost", "more on the right", "on the right side"),
    "in_front_of": ("in front", "more in front", "in the front", "at the front", "further forward",
                    "closer to the front", "frontmost"),
    "behind": ("behind", "further back", "farther back", "in the back", "at the back", "more to the back",
               "behind the other"),
    "on_top_of": ("on top", "on top of the other", "stacked on top", "on the other"),
    "above": ("above", "above the other"),
    "below": ("below", "underneath", "under", "beneath", "below the other", "under the other"),
}.items():
    for _word in _words:
        CHOICE_WORDS[_word] = _rel

# word used in the quantity templates -> quantity
_EXTENT_WORDS = {"height": "height", "width": "width", "depth": "depth", "tall": "height", "high": "height",
                 "wide": "width", "broad": "width", "deep": "depth", "thick": "depth"}
_DIFF_WORDS = {"taller": ("height", "taller_than"), "shorter": ("height", "shorter_than"),
               "wider": ("width", "wider_than"), "broader": ("width", "wider_than"),
               "thinner": ("width", "thinner_than"), "narrower": ("width", "thinner_than"),
               "higher": ("vertical_distance", "higher_than"), "lower": ("vertical_distance", "lower_than")}


@dataclass(frozen=True)
class Template:
    name: str
    pattern: str          # regex with placeholders, matched against the whole normalised question
    kind: str
    relation: str = ""    # fixed relation ("" = from {REL}/{CMP}/{DIFF})
    quantity: str = ""    # fixed quantity ("" = from {EXT}/{DIFF})
    example: str = ""     # one question the template is meant for (shown in error help)


_BE = r"(?:is|are)"
_VERB = r"(?:(?:located|positioned|placed|situated|found|sitting|standing|lying|resting|kept|set) )?"
_WHAT = (r"(?:(?:what is|what are|give me|tell me|measure|compute|estimate|find|calculate|report|how big is|"
         r"how large is) )?(?:the )?")
_APPEAR = r"(?:appear|seem|look)(?: to be)?"
_WHICH = r"(?:which|what|who)(?: (?:one|object|item|thing))?(?: of (?:the two|these|them|the two objects))?"
_CHOICE_VERB = r"(?:is|appears|seems|looks|is located|is positioned)(?: to be)?"
_OR = r"(?:,? or )"
_UNITS = r"(?:meters|metres|meter|metre|m|centimeters|centimetres|cm|inches|feet)"
_OBJECTS = r"(?:objects|things|items|object)"

_LEN_UNITS = (r"(?:millimeters|millimetres|millimeter|millimetre|mm|centimeters|centimetres|centimeter|centimetre|cm|"
              r"meters|metres|meter|metre|m|inches|inch|in|feet|foot|ft)")
_NUMBER = r"\d+(?:\.\d+)?"
_PLACE = (r"(?:(?:is there|do i have|do we have|have we got|is there still) (?:enough |any )?(?:space|room|free space|"
          r"clearance) (?:to (?:put|place|set|fit|drop) |for )|(?:can|could|may) (?:i|we|you|the robot|it) (?:put|"
          r"place|set|fit|drop) |(?:does|would|will|could) )(?:a |an )?")
_PNOUN = (r"(?: (?:wide|long|tall|high|deep|large|big|sized))?(?: (?:box|object|cube|thing|item|block|package|parcel|"
          r"container|crate|carton|part))?")

TEMPLATES: tuple[Template, ...] = (
    # ---------------------------------------------------------------- placement, thresholds (numbers: first)
    Template("place_between", rf"{_PLACE}{{SIZE}}{_PNOUN}(?: fit)? between {{A}} and {{B}}", "placement",
             relation="between", example="Is there space to put a 10 cm box between the mug and the bowl?"),
    Template("place_relative", rf"{_PLACE}{{SIZE}}{_PNOUN}(?: fit)? {{PLOC}} {{B}}", "placement",
             example="Is there room for a 10 x 10 x 20 cm box to the left of the mug?"),
    Template("threshold_edge_near", rf"{_BE} {{A}} (?:near|close to|at|by) (?:the )?(?:edge of (?:the )?{{SURF}}|"
             rf"{{SURF2}}(?:'s)? edge)", "threshold", quantity=EDGE_QUANTITY,
             example="Is the mug near the table edge?"),
    Template("threshold_edge_within", rf"{_BE} {{A}} (?:within|less than|closer than) {{LEN}} (?:of|from|to) "
             rf"(?:the )?(?:edge of (?:the )?{{SURF}}|{{SURF2}}(?:'s)? edge)", "threshold", quantity=EDGE_QUANTITY,
             example="Is the mug within 10 cm of the edge of the table?"),
    Template("edge_how_far", r"how (?:far|close) (?:is|are) {A} (?:from|to) (?:the )?(?:edge of (?:the )?{SURF}|"
             r"{SURF2}(?:'s)? edge)", "quantity", quantity=EDGE_QUANTITY,
             example="How far is the mug from the edge of the table?"),
    Template("threshold_within", rf"{_BE} {{A}} (?P<tcmp>within|less than|under|no more than|closer than) {{LEN}} "
             r"(?:away )?(?:of|from|to) {B}", "threshold", quantity="distance",
             example="Is the mug within 20 cm of the bowl?"),
    Template("threshold_beyond", rf"{_BE} {{A}} (?P<tcmp>more than|over|at least|farther than|further than) {{LEN}} "
             r"(?:away )?(?:from|of) {B}", "threshold", quantity="distance",
             example="Is the mug more than 30 cm away from the bowl?"),
    Template("threshold_difference", rf"{_BE} {{A}} (?P<tcmp>more than|over|at least|less than|under) {{LEN}} "
             r"{TDIFF} than {B}", "threshold", example="Is the bottle more than 5 cm taller than the can?"),

    # ---------------------------------------------------------------- listing, existence, location
    Template("list_see", rf"what (?:{_OBJECTS} )?(?:do|can) you see", "list", example="What objects do you see?"),
    Template("list_there", rf"what (?:{_OBJECTS} )?(?:are|is) (?:there|visible|in view|in the scene|around"
             r"|in front of you)", "list", example="What objects are there?"),
    Template("list_which", rf"which {_OBJECTS} (?:are there|are visible|do you see|can you see|are in the scene)",
             "list", example="Which objects are visible?"),
    Template("list_imperative", rf"(?:list|name|enumerate|show)(?: me)?(?: all)?(?: the)? {_OBJECTS}"
             r"(?: (?:you see|you can see|in the scene|in view|there are))?", "list",
             example="List all the objects."),
    Template("list_scene", r"(?:describe|summarise|summarize) (?:the scene|what you see)", "list",
             example="Describe the scene."),
    Template("count", r"how many (?:{A} )?(?:are there|do you see|can you see|are visible|are in the scene|"
             r"are in view|there are)", "list", example="How many mugs are there?"),
    Template("locate", r"where (?:is|are) {A}(?: (?:located|positioned|placed))?", "locate",
             example="Where is the mug?"),

    # ---------------------------------------------------------------- choice
    Template("choice_which", rf"{_WHICH} {_CHOICE_VERB} (?:the )?{{CMP}}(?: than the other| of the two)?"
             rf"(?:,|:)? {{A}}{_OR}{{B}}", "choice", example="Which is taller, the bottle or the can?"),
    Template("choice_which_of", rf"which (?:one )?of {{A}} (?:and|or) {{B}} {_CHOICE_VERB} (?:the )?{{CMP}}",
             "choice", example="Which of the bottle and the can is taller?"),
    Template("choice_between", r"(?:between|out of|of) {A} and {B},? which(?: one)? (?:is|appears|seems|looks)"
             r"(?: to be)? (?:the )?{CMP}", "choice", example="Between the mug and the bowl, which is closer?"),
    Template("choice_is_or", rf"(?:is|are) {{A}}{_OR}{{B}} (?:the )?{{CMP}}", "choice",
             example="Is the bottle or the can taller?"),

    # ---------------------------------------------------------------- scene queries (after the choices)
    Template("find_superlative", r"(?:which|what)(?: {A})? (?:is|are) (?:the )?{SUP}(?: (?:one|object|thing|item))?"
             r"(?: (?:to|from) {B})?", "find", example="Which object is closest to the camera?"),
    Template("find_superlative_noun", r"what is the {SUP} {A}(?: (?:to|from) {B})?", "find",
             example="What is the tallest mug?"),
    Template("find_relation", rf"(?:what|which)(?: {{A}})? (?:is|are)(?: there)? {_VERB}{{REL}} {{B}}", "find",
             example="What is on the box?"),
    Template("find_list", rf"(?:list|name|show)(?: me)?(?: all)?(?: the)? {_OBJECTS}(?: that are| which are)? "
             rf"{_VERB}{{REL}} {{B}}", "find", example="List the objects on the table."),

    # ---------------------------------------------------------------- distance to the camera (named)
    Template("camera_how_far", r"how (?:far|far away|distant) (?:is|are) {A} from {CAM}", "quantity",
             quantity="distance_to_camera", example="How far is the mug from the camera?"),
    Template("camera_how_far_from", r"how (?:far|far away) from {CAM} (?:is|are) {A}", "quantity",
             quantity="distance_to_camera", example="How far from the camera is the mug?"),
    Template("camera_distance", _WHAT + r"(?:distance|range) (?:between|from) {CAM} (?:and|to) {A}", "quantity",
             quantity="distance_to_camera", example="What is the distance from the camera to the mug?"),
    Template("camera_distance_from", _WHAT + r"(?:distance|range) (?:between|from|of) {A} (?:and|to|from) {CAM}",
             "quantity", quantity="distance_to_camera", example="What is the distance of the mug from the camera?"),
    Template("camera_how_close", r"how close (?:is|are) {A} to {CAM}", "quantity", quantity="distance_to_camera",
             example="How close is the mug to the camera?"),

    # ---------------------------------------------------------------- quantities between two objects
    Template("horizontal_distance", _WHAT + r"horizontal (?:distance|separation) (?:between|from) {A} (?:and|to)"
             r" {B}", "quantity", quantity="horizontal_distance",
             example="What is the horizontal distance between the mug and the bowl?"),
    Template("horizontal_apart", r"how far (?:apart )?(?:are|is) {A} (?:and|from) {B}(?: apart)? horizontally",
             "quantity", quantity="horizontal_distance",
             example="How far apart are the mug and the bowl horizontally?"),
    Template("vertical_distance", _WHAT + r"vertical (?:distance|separation|offset|gap) (?:between|from) {A} "
             r"(?:and|to) {B}", "quantity", quantity="vertical_distance",
             example="What is the vertical distance between the mug and the bowl?"),
    Template("vertical_apart", r"how far (?:apart )?(?:are|is) {A} (?:and|from) {B}(?: apart)? vertically",
             "quantity", quantity="vertical_distance", example="How far apart are the mug and the bowl vertically?"),
    Template("gap", _WHAT + r"(?:gap|clearance|spacing|free space|empty space|space|closest distance|"
             r"shortest distance|minimum distance|minimal distance) (?:between|from) {A} (?:and|to) {B}",
             "quantity", quantity="gap", example="What is the gap between the mug and the bowl?"),
    Template("gap_how_wide", r"how (?:wide|big|large) is the (?:gap|space|free space|clearance|opening) between {A} "
             r"and {B}", "quantity", quantity="gap", example="How wide is the gap between the mug and the bowl?"),
    Template("gap_how_much", r"how (?:much|big|large|wide) (?:a )?(?:space|room|free space|clearance|gap)"
             r" is (?:there )?between {A} and {B}", "quantity", quantity="gap",
             example="How much space is there between the mug and the bowl?"),
    Template("how_high_is_above", r"how (?:high|far) (?:is|are) {A} (?P<dir>above|below) {B}", "quantity",
             quantity="vertical_distance", example="How high is the lamp above the table?"),
    Template("how_much_difference", r"how much {DIFF} (?:is|are) {A} than {B}", "quantity",
             example="How much taller is the bottle than the can?"),
    Template("how_high_above", r"how (?:high|far) (?P<dir>above|below) {B} (?:is|are) {A}", "quantity",
             quantity="vertical_distance", example="How high above the table is the lamp?"),
    Template("distance_between", _WHAT + r"(?:(?:euclidean|direct|straight line|3d|straight-line) )?distance "
             r"(?:between|from|separating) {A} (?:and|to) {B}", "quantity", quantity="distance",
             example="What is the distance between the mug and the bowl?"),
    Template("distance_of_from", _WHAT + r"distance of {A} from {B}", "quantity", quantity="distance",
             example="What is the distance of the mug from the bowl?"),
    Template("how_far_apart", r"how far apart (?:are|is) {A} and {B}", "quantity", quantity="distance",
             example="How far apart are the mug and the bowl?"),
    Template("how_far_between", r"how far is it (?:from|between) {A} (?:to|and) {B}", "quantity",
             quantity="distance", example="How far is it from the mug to the bowl?"),
    Template("how_far_from", r"how (?:far|far away|distant) (?:is|are) {A} (?:away )?(?:from|to) {B}",
             "quantity", quantity="distance", example="How far is the mug from the bowl?"),
    Template("how_far_embedded", r"how (?:far|far away) {A} (?:is|are) (?:from|to) {B}", "quantity",
             quantity="distance", example="Tell me how far the mug is from the bowl."),
    Template("how_close", r"how close (?:is|are) {A} to {B}", "quantity", quantity="distance",
             example="How close is the mug to the bowl?"),
    Template("how_many_units", rf"how many {_UNITS} (?:is|are) {{A}} (?:away )?from {{B}}", "quantity",
             quantity="distance", example="How many meters is the mug from the bowl?"),
    Template("how_many_units_apart", rf"how many {_UNITS} apart (?:are|is) {{A}} and {{B}}", "quantity",
             quantity="distance", example="How many centimeters apart are the mug and the bowl?"),
    Template("how_much_distance", r"how much distance is there between {A} and {B}", "quantity",
             quantity="distance", example="How much distance is there between the mug and the bowl?"),

    # ---------------------------------------------------------------- distance to the camera (implied)
    Template("camera_distance_to", _WHAT + r"(?:distance|range) (?:to|of) {A}", "quantity",
             quantity="distance_to_camera", example="What is the distance to the mug?"),
    Template("camera_how_far_alone", r"how (?:far|far away|distant) (?:is|are) {A}(?: away)?", "quantity",
             quantity="distance_to_camera", example="How far away is the mug?"),

    # ---------------------------------------------------------------- extents of one object
    Template("how_extent", r"how {EXT} (?:is|are) {A}", "quantity", example="How tall is the bottle?"),
    Template("extent_embedded", r"how {EXT} {A} (?:is|are)", "quantity", example="Tell me how wide the box is."),
    Template("extent_of", _WHAT + r"{EXT} of {A}", "quantity", example="What is the height of the bottle?"),
    Template("dimensions_how_big", r"how (?:big|large) (?:is|are) {A}", "dimensions", example="How big is the box?"),
    Template("dimensions_of", _WHAT + r"(?:size|dimensions) of {A}", "dimensions",
             example="What are the dimensions of the box?"),
    Template("dimensions_what_size", r"what size (?:is|are) {A}", "dimensions", example="What size is the box?"),
    Template("extent_possessive", r"(?:what is )?{A}'s {EXT}", "quantity", example="What is the bottle's width?"),

    # ---------------------------------------------------------------- yes/no relations
    Template("relation_each_other", r"(?:are|is) {A} and {B} (?:next to each other|beside each other|"
             r"side by side|adjacent|adjacent to each other|near each other|close together|close to each other)",
             "relation", relation="next_to", example="Are the mug and the bowl next to each other?"),
    Template("relation_sit_on", r"(?:do|does) {A} (?:sit|stand|lie|rest)(?: on top of| on| upon) {B}",
             "relation", relation="on_top_of", example="Does the cup sit on the box?"),
    Template("relation_appear", rf"(?:do|does) {{A}} {_APPEAR} {_VERB}{{REL}} {{B}}", "relation",
             example="Does the mug appear to be to the left of the bowl?"),
    Template("relation_confirm", rf"(?:can you )?(?:confirm|check|verify)(?: whether| if| that)? {{A}} "
             rf"{_BE} {_VERB}{{REL}} {{B}}", "relation", example="Can you confirm that the mug is behind the bowl?"),
    Template("relation_is_it_true", rf"is it (?:true|the case|correct)(?: that)? {{A}} {_BE} {_VERB}{{REL}} {{B}}",
             "relation", example="Is it true that the cup is on top of the box?"),
    Template("relation_is_there", rf"is there (?:a |an )?{{A}} {_VERB}{{REL}} {{B}}", "relation",
             example="Is there a cup on the box?"),
    Template("relation_is", rf"{_BE} {{A}} {_VERB}{{REL}} {{B}}", "relation",
             example="Is the mug to the left of the bowl?"),
    Template("relation_statement", rf"{{A}} {_BE} {_VERB}{{REL}} {{B}}(?:,? (?:right|correct|true|isn't it|"
             r"is it not|true or false|yes or no))?", "relation", example="The mug is closer to the camera than "
             "the bowl, right?"),
    Template("exists", r"(?:do you see|can you see|is there|are there|do you have)(?: any)? {A}"
             r"(?: (?:in the scene|in view|anywhere|here))?", "exists", example="Do you see a mug?"),
)

CAMERA_PHRASES = ("the camera", "camera", "you", "me", "us", "the robot", "robot", "the sensor", "sensor",
                  "here", "the viewer", "the observer")


def _alternation(words) -> str:
    return "|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True))


_PLACE_WORDS = {alias: ("on" if rel == "on_top_of" else rel) for alias, rel in RELATION_ALIASES.items()
                if rel in ("left_of", "right_of", "in_front_of", "behind", "on_top_of")}
_PLACE_WORDS["onto"] = "on"
_OBJ = r"[a-z0-9][a-z0-9_' -]*?"
_PLACEHOLDERS = {
    "{A}": rf"(?P<a>{_OBJ})",
    "{B}": rf"(?P<b>{_OBJ})",
    "{REL}": rf"(?P<rel>{_alternation(RELATION_ALIASES)})",
    "{CMP}": rf"(?P<cmp>{_alternation(CHOICE_WORDS)})",
    "{CAM}": rf"(?:{_alternation(CAMERA_PHRASES)})",
    "{EXT}": rf"(?P<ext>{_alternation(_EXTENT_WORDS)})",
    "{DIFF}": rf"(?P<diff>{_alternation(_DIFF_WORDS)})",
    "{SUP}": rf"(?P<sup>{_alternation(SUPERLATIVES)})(?: (?:to|from) (?:the camera|you|me|the robot))?",
    "{LEN}": rf"(?P<len>{_NUMBER} ?{_LEN_UNITS})",
    "{SIZE}": rf"(?P<size>{_NUMBER}(?: ?{_LEN_UNITS})?(?: ?(?:x|by) ?{_NUMBER}(?: ?{_LEN_UNITS})?){{0,2}})",
    "{PLOC}": rf"(?P<ploc>{_alternation(_PLACE_WORDS)})",
    "{TDIFF}": rf"(?P<tdiff>{_alternation(DIFFERENCES)})",
    "{SURF}": r"(?P<surf>table|floor)",
    "{SURF2}": r"(?P<surf2>table|floor)",
}


def _compile(template: Template) -> re.Pattern:
    """The template's anchored regex. Each placeholder (and each hand-written named group) may appear once
    per template: Python's ``re`` rejects a group name defined twice, and the error names the template."""
    pattern = template.pattern
    for key, value in _PLACEHOLDERS.items():
        if pattern.count(key) > 1:
            raise ValueError(f"question template '{template.name}' uses {key} more than once")
        pattern = pattern.replace(key, value)
    try:
        return re.compile(rf"^{pattern}$")
    except re.error as err:
        raise ValueError(f"question template '{template.name}' is not a valid regex: {err}") from None


_COMPILED = tuple((t, _compile(t)) for t in TEMPLATES)     # every template is compiled (and checked) at import

_CONTRACTIONS = (("what's", "what is"), ("where's", "where is"), ("how's", "how is"), ("who's", "who is"),
                 ("which's", "which is"), ("it's", "it is"), ("that's", "that is"), ("there's", "there is"),
                 ("aren't", "are not"), ("what're", "what are"), ("how're", "how are"))
_CONTRACTION_MAP = dict(_CONTRACTIONS)
# whole words only: "the biscuit's box" keeps its possessive
_CONTRACTION_RE = re.compile(rf"(?<![a-z0-9_'])(?:{_alternation(_CONTRACTION_MAP)})(?![a-z0-9_'])")
_PREFIXES = re.compile(
    r"^(?:(?:please|hey|ok|okay|so|robot|quick question|question)[,:]? )*"
    r"(?:(?:can|could|would) you (?:please )?(?:tell me|say|estimate|measure|check)[,:]? |tell me[,:]? |"
    r"i (?:want|would like|'d like) to know[,:]? |do you know[,:]? |i wonder |i am wondering |"
    r"please (?:tell me|estimate|measure)[,:]? )?(?:whether |if )?")
_SUFFIXES = re.compile(rf"(?:,? (?:please|thanks|thank you)|,? or not|,? in {_UNITS}|,? approximately|,? roughly|"
                       r",? exactly|,? right now|,? currently|,? in the (?:image|scene|picture|view))+$")
_CONNECTORS = frozenset({"from", "to", "than", "between", "apart", "horizontally", "vertically", "which", "or"})
_PRONOUNS = frozenset({"it", "they", "them", "this", "that", "there", "what", "which", "you"})
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an) ")
_EXAMPLES = ("Is the mug to the left of the bowl?", "How far is the mug from the bowl?",
             "Which is taller, the bottle or the can?", "How tall is the bottle?", "What objects do you see?")

# "How far is the mug to the left of the bowl?": an offset along one direction, which is no quantity of
# ``QUANTITIES``; without this check "left of the bowl" would be read as the reference object.
_OFFSET_RELATIONS = ("left_of", "right_of", "in_front_of", "behind")
_DIRECTION = _alternation(k for k, v in RELATION_ALIASES.items() if v in _OFFSET_RELATIONS)
_PLAIN_WORD = rf"(?!(?:{_alternation(_CONNECTORS)})\b)[a-z0-9_'-]+"          # no connector ("from", "to")
_PLAIN_PHRASE = rf"{_PLAIN_WORD}(?: {_PLAIN_WORD})*?"
_DIRECTIONAL_OFFSET = tuple(re.compile(rf"^{pattern}$") for pattern in (
    rf"how (?:far|much|many {_UNITS}) (?:is|are) (?P<a>{_PLAIN_PHRASE}) {_VERB}(?P<rel>{_DIRECTION}) "
    rf"(?P<b>{_PLAIN_PHRASE})",
    rf"how (?:far|much|many {_UNITS}) (?P<rel>{_DIRECTION}) (?P<b>{_PLAIN_PHRASE}) (?:is|are) "
    rf"(?P<a>{_PLAIN_PHRASE})"))


def normalise_question(text: str) -> str:
    """Lower-case, single-spaced question without final punctuation, politeness or unit requests."""
    t = text.strip().lower().replace("\u2019", "'").replace("\u2018", "'").replace("\u00a0", " ")
    t = _CONTRACTION_RE.sub(lambda m: _CONTRACTION_MAP[m.group(0)], t)
    t = re.sub(r"[?!;]+|(?<!\d)\.|\.(?!\d)", " ", t)        # a decimal point stays
    t = re.sub(r"\s+", " ", t).strip(" ,")
    t = _PREFIXES.sub("", t, count=1)
    trimmed = _SUFFIXES.sub("", t).strip(" ,")
    return trimmed if len(trimmed.split()) >= 3 else t


def _object_phrase(text: str | None) -> str:
    phrase = " ".join((text or "").split()).strip(" ,'")
    return _LEADING_ARTICLE.sub("", phrase)


def _relation_and_quantity(template: Template, groups: dict) -> tuple[str, str]:
    """The canonical relation and quantity a matched template asks about: its fixed ones, or those its
    ``rel``/``cmp``/``ext``/``diff``/``dir`` groups name."""
    relation, quantity = template.relation, template.quantity
    if groups.get("rel"):
        relation = RELATION_ALIASES[groups["rel"]]
    if groups.get("cmp"):
        relation = CHOICE_WORDS[groups["cmp"]]
    if groups.get("ext"):
        quantity = _EXTENT_WORDS[groups["ext"]]
    if groups.get("diff"):
        quantity, relation = _DIFF_WORDS[groups["diff"]]
    if groups.get("dir"):
        relation = "higher_than" if groups["dir"] == "above" else "lower_than"
    return relation, quantity


def _build(template: Template, match: re.Match, question: str) -> Query | None:
    groups = match.groupdict()
    a, b = _object_phrase(groups.get("a")), _object_phrase(groups.get("b"))
    if _CONNECTORS.intersection(a.split()) or _CONNECTORS.intersection(b.split()):
        return None      # an object phrase swallowed a clause: let a later template try
    if a in _PRONOUNS or b in _PRONOUNS:
        return None
    relation, quantity = _relation_and_quantity(template, groups)
    if template.kind in ("find", "placement", "threshold") or quantity == EDGE_QUANTITY:
        return _scene_query(template, groups, a, b, relation, quantity, question)
    if template.kind in ("list",):
        if a in ("object", "objects", "thing", "things", "item", "items"):
            a = ""
        return Query("list", subject=a, question=question, template=template.name)
    if not a:
        return None
    if template.kind in ("exists", "locate", "dimensions"):
        return Query(template.kind, subject=a, question=question, template=template.name)
    if template.kind in ("choice", "relation"):
        return _pair_query(template, relation, a, b, question)
    binary = QUANTITIES[quantity].binary or bool(relation)
    if binary and not b:
        return None
    return Query("quantity", relation=relation, quantity=quantity, subject=a, reference=b if binary else "",
                 question=question, template=template.name)


_UNIT_METRES = {"mm": 0.001, "millimeter": 0.001, "millimetre": 0.001, "cm": 0.01, "centimeter": 0.01,
                "centimetre": 0.01, "m": 1.0, "meter": 1.0, "metre": 1.0, "in": 0.0254, "inch": 0.0254,
                "inche": 0.0254, "ft": 0.3048, "foot": 0.3048, "feet": 0.3048}
_GENERIC_OBJECTS = frozenset({"object", "objects", "thing", "things", "item", "items", "one", "ones"})
_LESS_WORDS = frozenset({"within", "less than", "under", "no more than", "closer than"})


def _lengths(text: str) -> list[float] | None:
    """Metres of each ``x``/``by``-separated length in ``text`` ("10 x 5 cm", "0.2 m"); a number without a unit
    takes the next unit given; None when no unit is given at all."""
    parts = [p.strip() for p in re.split(r"\s*(?:\bx\b|\bby\b|(?<=\d)x(?=\s*\d))\s*", text.strip()) if p.strip()]
    values: list[float] = []
    units: list[float | None] = []
    for part in parts:
        m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([a-z]*)", part)
        if not m:
            return None
        unit = m.group(2).rstrip("s") if m.group(2) not in ("", "ins") else m.group(2)
        if unit and unit not in _UNIT_METRES:
            return None
        values.append(float(m.group(1)))
        units.append(_UNIT_METRES[unit] if unit else None)
    if not values or all(u is None for u in units):
        return None
    out: list[float] = []
    pending: float | None = None
    for value, unit in zip(reversed(values), reversed(units)):
        pending = unit if unit is not None else pending
        if pending is None:
            return None
        out.append(value * pending)
    return out[::-1]


def _placement_size(text: str) -> tuple[float, float, float] | None:
    """(w, d, h) metres: one length = a cube, two = the footprint (h = the smaller), three = w, d, h."""
    values = _lengths(text)
    if not values:
        return None
    if len(values) == 1:
        return (values[0],) * 3
    if len(values) == 2:
        return values[0], values[1], min(values)
    return values[0], values[1], values[2]


def _scene_query(template: Template, groups: dict, a: str, b: str, relation: str, quantity: str,
                 question: str) -> Query | None:
    """The ``find``, ``placement``, ``threshold`` or edge-distance query of a matched template (None when its
    phrases do not fit, so that a later template may try)."""
    if template.kind == "find":
        return _find_query(template, groups, a, b, relation, question)
    if template.kind == "placement":
        return _placement_query(template, groups, a, b, relation, question)
    surface = groups.get("surf") or groups.get("surf2") or ""
    if not a:
        return None
    if template.kind == "quantity":                     # distance to a surface's edge
        return Query("quantity", quantity=EDGE_QUANTITY, subject=a, reference=surface, question=question,
                     template=template.name)
    return _threshold_query(template, groups, a, b, quantity, surface, question)


def _find_query(template: Template, groups: dict, a: str, b: str, relation: str, question: str) -> Query | None:
    if a.startswith("of ") or " and " in f" {a} ":
        return None                 # "which of A and B is ...": a choice between two named objects
    camera = b in CAMERA_PHRASES
    label = "" if a in _GENERIC_OBJECTS else a
    if groups.get("sup"):
        key, descending = SUPERLATIVES[groups["sup"]]
        if b and not camera:
            if key != "distance_to_camera":
                return None
            key = "distance_to_reference"
        order = f"{key} {'desc' if descending else 'asc'}"
        return Query("find", subject=label, reference="" if camera else b, order_by=order, limit=1,
                     question=question, template=template.name)
    if not b or camera:
        return None
    return Query("find", relation=relation, subject=label, reference=b, question=question, template=template.name)


def _placement_query(template: Template, groups: dict, a: str, b: str, relation: str, question: str
                     ) -> Query | None:
    size = _placement_size(groups.get("size") or "")
    if size is None or not b or b in CAMERA_PHRASES:
        return None
    location = relation or _PLACE_WORDS.get(groups.get("ploc") or "", "")
    if location == "between" and (not a or a == b):
        return None
    options = (a, b) if location == "between" else (b,)
    return Query("placement", relation=location, reference=b, options=options, size=size, question=question,
                 template=template.name)


def _threshold_query(template: Template, groups: dict, a: str, b: str, quantity: str, surface: str,
                     question: str) -> Query | None:
    if quantity == EDGE_QUANTITY and not groups.get("len"):
        return Query("threshold", quantity=EDGE_QUANTITY, comparison="near", subject=a, reference=surface,
                     question=question, template=template.name)
    lengths = _lengths(groups.get("len") or "")
    if not lengths or len(lengths) != 1:
        return None
    less = groups.get("tcmp") in _LESS_WORDS or quantity == EDGE_QUANTITY
    quantity = groups.get("tdiff") or quantity
    camera = b in CAMERA_PHRASES
    if quantity == EDGE_QUANTITY:
        reference = surface
    elif camera and quantity == "distance":
        quantity, reference = "distance_to_camera", ""
    elif not b or camera:
        return None
    else:
        reference = b
    return Query("threshold", quantity=quantity, comparison="less_than" if less else "more_than",
                 threshold_m=lengths[0], subject=a, reference=reference, question=question, template=template.name)


def _pair_query(template: Template, relation: str, a: str, b: str, question: str) -> Query | None:
    """The "choice" or "relation" query between the object phrases ``a`` and ``b`` (None without a ``b``, or
    a choice between one object and itself)."""
    if template.kind == "choice":
        if not b or a == b:
            return None
        return Query("choice", relation=relation, subject=a, reference=b, options=(a, b), question=question,
                     template=template.name)
    if not b:
        return None
    return Query("relation", relation=relation, subject=a, reference=b, question=question, template=template.name)


def _refuse_directional_offset(text: str, question: str) -> None:
    """Raise ``QueryError`` when the normalised ``text`` asks how far one object lies in a direction (left,
    right, in front, behind) of another: no quantity measures such an offset."""
    for regex in _DIRECTIONAL_OFFSET:
        match = regex.match(text)
        if not match:
            continue
        a, b = _object_phrase(match.group("a")), _object_phrase(match.group("b"))
        if not a or not b or a in _PRONOUNS or b in _PRONOUNS:
            continue
        phrase = RELATIONS[RELATION_ALIASES[match.group("rel")]].phrase
        raise QueryError(f"'{question}' asks for the offset of the {a} {phrase} the {b}, which is not a "
                         f"measured quantity (quantities: {', '.join(QUANTITIES)}); ask e.g. 'Is the {a} "
                         f"{phrase} the {b}?' or 'How far is the {a} from the {b}?'")


def parse(question: str) -> Query:
    """Structured query for ``question``. Raises ``QueryError`` for an empty, too long or non-string question
    or one asking for a directional offset ("how far to the left of"), and its subclass
    ``UnrecognisedQuestion`` (with examples) when no template fits."""
    if not isinstance(question, str):
        raise QueryError("the question must be a string")
    if not question.strip():
        raise QueryError("empty question; try e.g. " + ", ".join(f"'{e}'" for e in _EXAMPLES))
    if len(question) > MAX_QUESTION_CHARS:
        raise QueryError(f"question too long ({len(question)} characters, at most {MAX_QUESTION_CHARS})")
    text = normalise_question(question)
    _refuse_directional_offset(text, question.strip())
    for template, regex in _COMPILED:
        match = regex.match(text)
        if match:
            query = _build(template, match, question.strip())
            if query is not None:
                return query
    hint = ""
    if re.match(rf"^{_BE} ", text):
        hint = f" (no known relation found; relations: {', '.join(RELATIONS)})"
    raise UnrecognisedQuestion(f"could not parse '{question.strip()}'{hint}; try e.g. "
                     + ", ".join(f"'{e}'" for e in _EXAMPLES))

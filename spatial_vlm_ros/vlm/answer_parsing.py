"""Reading a VLM's free text as the answer to a template question: yes/no, or a length in metres.

A VLM asked "Is the mug to the left of the bowl?" or "How far is the mug from the bowl?" answers in prose.
:func:`read_answer` turns that prose into the template's kind, so it can be scored like the geometry:

- ``yes_no``: "yes"/"no" (or yeah, yep, correct, true / nope, incorrect, false, not) as the first word,
  after an optional hedge ("probably", "I think", "the answer is" ...) and an "Answer:" prefix.
  "Probably not" is no, "not sure" is not read, nor is a sentence that only contains "yes" or "not" later.
- ``metric``: the first number followed by a length unit: mm, cm, m, km, inches (in, ", inch), feet
  (ft, ', foot) in any usual spelling ("0.3 m", "30 cm", "about 12 inches", "1.5 feet"); number words
  one to twelve, "a"/"an" ("about a metre") and "half a" count as numbers. A range ("20-30 cm",
  "between 20 and 30 cm") reads as its middle; adjacent parts in falling units add up ("5 feet 3 inches",
  "1 m 20 cm"). A decimal comma ("0,3 m") is not read. A bare number is read as metres only when it is
  the whole answer ("0.35"), since the grounding facts are in metres. The value is a magnitude: "3 cm
  shorter" reads 0.03.
- ``choice`` and ``free``: nothing to read.

ROS-free; never raises for the text (None means "not read").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

#: unit spellings -> metres per unit
_UNITS = {
    "mm": 1e-3, "millimeter": 1e-3, "millimeters": 1e-3, "millimetre": 1e-3, "millimetres": 1e-3,
    "cm": 1e-2, "centimeter": 1e-2, "centimeters": 1e-2, "centimetre": 1e-2, "centimetres": 1e-2,
    "m": 1.0, "meter": 1.0, "meters": 1.0, "metre": 1.0, "metres": 1.0,
    "km": 1e3, "kilometer": 1e3, "kilometers": 1e3, "kilometre": 1e3, "kilometres": 1e3,
    "in": 0.0254, "inch": 0.0254, "inches": 0.0254, '"': 0.0254, "''": 0.0254,
    "ft": 0.3048, "foot": 0.3048, "feet": 0.3048, "'": 0.3048,
}
_WORD_NUMBERS = {"a": 1.0, "an": 1.0, "one": 1.0, "two": 2.0, "three": 3.0, "four": 4.0, "five": 5.0,
                 "six": 6.0, "seven": 7.0, "eight": 8.0, "nine": 9.0, "ten": 10.0, "eleven": 11.0,
                 "twelve": 12.0, "half a": 0.5, "half an": 0.5}
_YES = frozenset({"yes", "yeah", "yep", "yup", "correct", "true", "indeed", "affirmative"})
_NO = frozenset({"no", "nope", "not", "incorrect", "false", "negative"})
_HEDGES = re.compile(r"^(?:(?:answer|a)\s*:\s*)?(?:(?:the answer is|i think|i believe|i would say|it seems|"
                     r"it looks like|probably|likely|most likely|possibly|definitely|certainly|absolutely|"
                     r"surely|maybe|perhaps)[\s,:]+)*")
_UNSURE = re.compile(r"^not (?:sure|certain|clear)|^(?:unclear|unknown|uncertain)\b")

_WORDS = "|".join(sorted(map(re.escape, _WORD_NUMBERS), key=len, reverse=True))
_NUMBER = rf"(?:\d+(?:\.\d+)?|\.\d+|(?:{_WORDS})(?=\s))"      # a number word needs a space after it ("am")
_WORD_UNITS = "|".join(sorted((u for u in _UNITS if u[0].isalpha() and u != "in"), key=len, reverse=True))
# "in" is a unit only at the end of a clause: "12 in." yes, "2 in the box" no
_UNIT = rf"(?:(?:{_WORD_UNITS})\b|in\b(?!\s+[a-z])|''|\"|')"
_MEASURE = re.compile(rf"(?<![\w.,])(?P<a>{_NUMBER})(?:\s*(?:-|–|to|or)\s*(?P<b>{_NUMBER}))?\s*(?P<unit>{_UNIT})",
                      re.IGNORECASE)
_BETWEEN = re.compile(rf"\bbetween\s+(?P<a>{_NUMBER})\s*(?:{_UNIT})?\s+and\s+(?P<b>{_NUMBER})\s*(?P<unit>{_UNIT})",
                      re.IGNORECASE)
_BARE = re.compile(r"^(?:(?:about|around|approximately|roughly|~)\s*)?(?P<a>\d+(?:\.\d+)?|\.\d+)\s*$")
_JOIN = re.compile(r"^\s*(?:,|and)?\s*$")


@dataclass(frozen=True)
class Reading:
    """What :func:`read_answer` got from a text: ``parsed`` False when it could not read the kind."""

    parsed: bool
    yes: bool = False
    value: float = 0.0            # metres (kind metric)


def _number(text: str) -> float:
    key = " ".join(text.lower().split())
    return _WORD_NUMBERS[key] if key in _WORD_NUMBERS else float(key)


def parse_yes_no(text: str) -> bool | None:
    """True / False when the answer starts with yes / no (see the module doc), else None."""
    words = _HEDGES.sub("", " ".join(str(text).lower().split()).lstrip(" \"'*-(["))
    first = re.match(r"[a-z]+", words)
    if first is None or _UNSURE.match(words):
        return None
    word = first.group(0)
    return True if word in _YES else False if word in _NO else None


def parse_length(text: str) -> float | None:
    """The first length in ``text``, in metres (see the module doc), else None."""
    text = str(text)
    bare = _BARE.match(text.strip().rstrip(".").lower())
    if bare:
        return float(bare.group("a"))
    between = _BETWEEN.search(text)
    measures = list(_MEASURE.finditer(text))
    if between and (not measures or between.start() <= measures[0].start()):
        return 0.5 * (_number(between["a"]) + _number(between["b"])) * _UNITS[between["unit"].lower()]
    if not measures:
        return None
    total, scale, end = 0.0, float("inf"), None
    for m in measures:
        unit = _UNITS[m["unit"].lower()]
        if end is not None and (unit >= scale or not _JOIN.match(text[end:m.start()])):
            break                                   # not the next, smaller part of the same length
        a = _number(m["a"])
        total += (0.5 * (a + _number(m["b"])) if m["b"] else a) * unit
        scale, end = unit, m.end()
    return total


def read_answer(kind: str, text: str) -> Reading:
    """``text`` read as an answer of ``kind`` (``yes_no``, ``metric``, ``choice`` or ``free``)."""
    if kind == "yes_no":
        yes = parse_yes_no(text)
        return Reading(False) if yes is None else Reading(True, yes=yes)
    if kind == "metric":
        value = parse_length(text)
        return Reading(False) if value is None else Reading(True, value=value)
    return Reading(False)

"""Resolve the names people use ("mug_1", "the red mug", "small object", "mugs") to tracked objects.

Matching is case-insensitive and ignores articles and simple plurals. A phrase matches an object when every
word of the phrase is explained by the object: a word of its label, its id, its color (``color_name``), a
generic noun ("object", "thing", "one", "item"), or a size word ("small", "large", "tall", ...) that picks the
extreme object among those matching the rest of the phrase. An exact id always wins; objects whose label alone
explains the phrase are preferred to those that need their color or a generic noun.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from .errors import ResolutionError
from .observation import TrackedObject

ARTICLES = frozenset({"the", "a", "an", "this", "that", "these", "those", "all", "any", "every", "each"})
GENERIC_NOUNS = frozenset({"object", "thing", "item", "one", "entity"})
COLOR_SYNONYMS = {"grey": "gray", "violet": "purple", "golden": "yellow", "crimson": "red", "navy": "blue"}
# size word -> (measure, pick largest?)
SIZE_WORDS: dict[str, tuple[str, bool]] = {
    "small": ("volume", False), "smaller": ("volume", False), "smallest": ("volume", False),
    "little": ("volume", False), "tiny": ("volume", False),
    "large": ("volume", True), "larger": ("volume", True), "largest": ("volume", True),
    "big": ("volume", True), "bigger": ("volume", True), "biggest": ("volume", True), "huge": ("volume", True),
    "tall": ("height", True), "taller": ("height", True), "tallest": ("height", True),
    "short": ("height", False), "shorter": ("height", False), "shortest": ("height", False),
    "wide": ("width", True), "wider": ("width", True), "widest": ("width", True),
    "narrow": ("width", False), "thin": ("width", False), "thinnest": ("width", False),
}
_WORD = re.compile(r"[a-z0-9_]+")


def singular(word: str) -> str:
    """Crude English singular ("mugs" -> "mug", "boxes" -> "box", "cherries" -> "cherry", "glass" kept)."""
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 2 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def same_word(a: str, b: str) -> bool:
    """Equal up to a simple plural ("mug"/"mugs", "tomato"/"tomatoes", "glass"/"glasses")."""
    return a == b or singular(a) == singular(b) or a in (b + "s", b + "es") or b in (a + "s", a + "es")


def normalise_phrase(text: str) -> list[str]:
    """Lower-case words of ``text`` without articles."""
    return [w for w in _WORD.findall(text.lower()) if w not in ARTICLES]


def id_key(text: str) -> str:
    """Canonical form of an id ("Mug 1" -> "mug_1")."""
    return "_".join(_WORD.findall(text.lower()))


def _color(word: str) -> str:
    return COLOR_SYNONYMS.get(word, word)


def _measure(obj: TrackedObject, what: str) -> float:
    size = np.asarray(obj.size, dtype=np.float64)
    if what == "height":
        return float(size[2])
    if what == "width":
        return float(size[0])
    return float(np.prod(np.maximum(size, 0.0)))


def _explains(obj: TrackedObject, words: list[str]) -> tuple[bool, list[str], bool]:
    """Whether every word is explained by ``obj``, the size words left to check among peers, and whether the
    label alone explained all the other words (such objects are preferred: "red object" means the objects
    labelled so, not also the red mug)."""
    label_words = normalise_phrase(obj.label)
    color = _color(obj.color_name.lower()) if obj.color_name else ""
    pending: list[str] = []
    by_label = True
    for word in words:
        if any(same_word(word, lw) for lw in label_words):
            continue
        if singular(word) in GENERIC_NOUNS or (color and _color(word) == color):
            by_label = False
            continue
        if word in SIZE_WORDS:
            pending.append(word)
            continue
        return False, [], False
    return True, pending, by_label


def matches(name: str, objects: Sequence[TrackedObject]) -> list[TrackedObject]:
    """Every object that ``name`` can refer to (an exact id gives just that object); [] if none."""
    if not isinstance(name, str):
        return []
    key = id_key(name)
    for obj in objects:
        if key and id_key(obj.id) == key:
            return [obj]
    words = normalise_phrase(name)
    if not words:
        return []
    explained = []
    for obj in objects:
        ok, pending, by_label = _explains(obj, words)
        if ok:
            explained.append((obj, pending, by_label))
    if any(by_label for _, _, by_label in explained):
        explained = [e for e in explained if e[2]]
    if not any(pending for _, pending, _ in explained):
        return [obj for obj, _, _ in explained]
    return _extremes(explained)


def _extremes(explained: list[tuple[TrackedObject, list[str], bool]]) -> list[TrackedObject]:
    """The explained objects that are the extreme among them for each of their pending size words
    (``SIZE_WORDS``: "largest", "smaller", ...)."""
    peers = [obj for obj, _, _ in explained]
    chosen = []
    for obj, pending, _ in explained:
        keep = True
        for word in pending:
            what, largest = SIZE_WORDS[word]
            values = [_measure(o, what) for o in peers]
            extreme = max(values) if largest else min(values)
            keep &= bool(np.isclose(_measure(obj, what), extreme, rtol=1e-9, atol=1e-12))
        if keep:
            chosen.append(obj)
    return chosen


def describe(obj: TrackedObject) -> str:
    """Short distinguishing description for candidate lists: color and range, e.g. "red, 0.82 m away"."""
    parts = []
    if obj.color_name:
        parts.append(obj.color_name)
    parts.append(f"{float(np.linalg.norm(obj.center)):.2f} m away")
    return ", ".join(parts)


def _candidate_list(objects: Iterable[TrackedObject]) -> str:
    return ", ".join(f"{o.id} ({describe(o)})" for o in objects)


def resolve(name: str, objects: Sequence[TrackedObject]) -> TrackedObject:
    """The single object ``name`` refers to.

    Raises ResolutionError (with ``candidates`` = the ids considered) when nothing or more than one object
    matches, e.g. "'mug' is ambiguous: mug_1 (red, 0.61 m away), mug_2 (blue, 0.74 m away); ...".
    """
    if not isinstance(name, str) or not name.strip():
        raise ResolutionError("no object name given" + (f"; known objects: {_candidate_list(objects)}"
                                                        if objects else ""), [o.id for o in objects])
    found = matches(name, objects)
    if len(found) == 1:
        return found[0]
    if not found:
        if not objects:
            raise ResolutionError(f"no object matches '{name.strip()}': the scene is empty", [])
        raise ResolutionError(f"no object matches '{name.strip()}'; known objects: {_candidate_list(objects)}",
                              [o.id for o in objects])
    example = found[0].id
    raise ResolutionError(f"'{name.strip()}' is ambiguous: {_candidate_list(found)}; name one by id "
                          f"(e.g. '{example}') or add a color or size word", [o.id for o in found])


def display_name(obj: TrackedObject, objects: Sequence[TrackedObject]) -> str:
    """How answers name ``obj``: "the mug" if its label is unique, else "the red mug", else "the mug (mug_2)"."""
    same = [o for o in objects if o.label == obj.label and o.id != obj.id]
    if not same:
        return f"the {obj.label}"
    if obj.color_name and obj.color_name not in obj.label.split() and \
            all(o.color_name != obj.color_name for o in same):
        return f"the {obj.color_name} {obj.label}"
    return f"the {obj.label} ({obj.id})"

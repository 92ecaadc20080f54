"""The console table an evaluation prints at the end: one column per run (the node, the baseline), one row per
headline figure of its summary (``scoring.summarize``). Fractions print as percentages, latencies in ms.
"""
from __future__ import annotations

import math
from collections.abc import Callable

from .report import RunResult

LABEL_WIDTH = 40


def _pct(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:5.1f}%"


def _detection(s: dict, key: str) -> str:
    """Recall or precision with its counts, e.g. ``92.0% 23/25``."""
    o = s.get("objects", {})
    return f"{_pct(o.get(key)).strip()} {o.get('found', 0)}/{o.get('present' if key == 'recall' else 'reported', 0)}"


def _ece(s: dict) -> str:
    v = s["relations"]["overall"]["calibration"]["ece"]
    return "n/a" if not math.isfinite(v) else f"{v:.3f}"


def _latency(s: dict) -> str:
    p50, p99 = s["latency_ms"]["all"]["p50"], s["latency_ms"]["all"]["p99"]
    return f"{p50:.1f}/{p99:.1f}" if math.isfinite(p50) and math.isfinite(p99) else "n/a"


def _frames(s: dict) -> str:
    f = s["frames"]
    return f"{f['published']}/{f['processed']}/{f['dropped']}"


def _percent(fn: Callable[[dict], float]) -> Callable[[dict], str]:
    return lambda s: _pct(fn(s))


#: (row label, summary -> cell text), in printing order
ROWS: tuple[tuple[str, Callable[[dict], str]], ...] = (
    ("detector recall (found / present)", lambda s: _detection(s, "recall")),
    ("detector precision (found / reported)", lambda s: _detection(s, "precision")),
    ("relation accuracy (every GT object)", _percent(lambda s: s["relations"]["overall"]["accuracy"])),
    ("metric within +-10%", _percent(lambda s: s["quantities"]["overall"]["within_10pct"])),
    ("metric within +-25%", _percent(lambda s: s["quantities"]["overall"]["within_25pct"])),
    ("metric within [0.5x, 2x]", _percent(lambda s: s["quantities"]["overall"]["within_half_double"])),
    ("distance within +-10%", _percent(
        lambda s: s["quantities"]["per_quantity"].get("distance", {}).get("within_10pct", math.nan))),
    ("metric errors within 2 sigma", _percent(lambda s: s["quantities"]["overall"]["coverage_2sigma"]["coverage"])),
    ("wrong at confidence >= 0.99",
     _percent(lambda s: s["relations"]["overall"]["calibration"]["wrong_high_fraction"])),
    ("relation confidence ECE", _ece),
    ("scene queries: find accuracy", _percent(
        lambda s: s.get("scene_queries", {}).get("find", {}).get("accuracy", math.nan))),
    ("scene queries: placement accuracy", _percent(
        lambda s: s.get("scene_queries", {}).get("placement", {}).get("accuracy", math.nan))),
    ("service latency p50/p99 (ms)", _latency),
    ("frames published/processed/dropped", _frames),
)


def _line(label: str, cells: list[str], widths: list[int]) -> str:
    return f"{label:{LABEL_WIDTH}s}" + "".join(f"{c:>{w}s}" for c, w in zip(cells, widths))


def summary_table(results: list[RunResult]) -> str:
    """The table's text: a header of run names, then ``ROWS``."""
    widths = [max(14, len(r.name) + 2) for r in results]
    lines = [_line("", [r.name for r in results], widths)]
    lines += [_line(label, [cell(r.summary) for r in results], widths) for label, cell in ROWS]
    return "\n".join(lines)


def print_summary(results: list[RunResult]) -> None:
    """Print ``summary_table(results)``."""
    print(summary_table(results))

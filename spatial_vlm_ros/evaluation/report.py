"""Evaluation outputs: ``results.json``, a Markdown report with matplotlib plots, and annotated frames.

Plots use matplotlib's Agg backend (no display). Annotated frames are drawn with cv2 on the RGB image:
ground-truth boxes and labels, the node's object centers projected into the image, one question, the
package's answer and the truth.
"""
from __future__ import annotations

import json
import math
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .calibration import reliability_lines
from .records import QueryRecord, quantity_records, relation_records
from .scoring import SUCCESS_CRITERIA, failure_breakdown


@dataclass
class RunResult:
    """One evaluated configuration (e.g. ``external`` or ``tabletop`` detector) for the report."""

    name: str
    summary: dict
    records: list[QueryRecord]
    notes: list[str] = field(default_factory=list)
    scene_records: list = field(default_factory=list)     # scene_query_truth.SceneQueryRecord


@dataclass
class FrameAnnotation:
    """What to draw on one frame. Pixels are (u right, v down); ``image`` is RGB uint8 HxWx3."""

    image: np.ndarray
    boxes: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)   # label, (u0,v0,u1,v1)
    points: list[tuple[str, tuple[float, float]]] = field(default_factory=list)        # label, (u, v)
    lines: list[str] = field(default_factory=list)     # question, answer, truth: drawn as a caption
    title: str = ""


_PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
            (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(obj):
    """NaN/inf -> None so the JSON is standard."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_results_json(path: str | os.PathLike, runs: Sequence[RunResult], meta: dict | None = None) -> Path:
    """Summary and every record of each run, NaN written as null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta or {}, "runs": {
        r.name: {"summary": r.summary, "failures": failure_breakdown(r.records), "notes": r.notes,
                 "records": [rec.to_dict() for rec in r.records],
                 "scene_queries": [rec.to_dict() for rec in r.scene_records]} for r in runs}}
    path.write_text(json.dumps(_clean(data), indent=1, default=_json_default))
    return path


# ----------------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_error_vs_distance(records: Sequence[QueryRecord], path: str | os.PathLike, title: str = "") -> Path | None:
    """Relative error of every answered quantity against the subject's true range from the camera."""
    pts = [r for r in quantity_records(records)
           if r.answered and r.truth and float(r.truth) > 0 and math.isfinite(r.subject_range_m)]
    if not pts:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    names = sorted({r.name for r in pts})
    for i, name in enumerate(names):
        sel = [r for r in pts if r.name == name]
        x = [r.subject_range_m for r in sel]
        rel = [100.0 * (float(r.predicted) - float(r.truth)) / float(r.truth) for r in sel]
        ab = [100.0 * abs(float(r.predicted) - float(r.truth)) for r in sel]
        c = np.array(_PALETTE[i % len(_PALETTE)]) / 255.0
        axes[0].scatter(x, rel, s=12, color=c, label=name, alpha=0.8)
        axes[1].scatter(x, ab, s=12, color=c, label=name, alpha=0.8)
    for y in (-25, -10, 10, 25):
        axes[0].axhline(y, color="grey", lw=0.8, ls="--" if abs(y) == 25 else ":")
    axes[0].set_ylim(-60, 60)
    axes[0].set_xlabel("true range camera -> subject (m)")
    axes[0].set_ylabel("signed relative error (%)")
    axes[0].set_title("relative error (dashed +-25 %, dotted +-10 %)")
    axes[1].set_xlabel("true range camera -> subject (m)")
    axes[1].set_ylabel("absolute error (cm)")
    axes[1].set_title("absolute error")
    axes[1].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_relation_confusion(summary: dict, path: str | os.PathLike, title: str = "") -> Path | None:
    """One 2x3 matrix per relation: rows truth (holds / not), columns answer (yes / no / failed)."""
    per = summary["relations"]["per_relation"]
    if not per:
        return None
    plt = _pyplot()
    names = list(per)
    cols = min(6, len(names))
    rows = int(math.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(max(4.0, 2.1 * cols), 2.0 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names):
        c = per[name]["confusion"]
        # failed answers are not split by truth in the summary: recount from the confusion totals
        m = np.array([[c["true_yes"], c["false_no"]], [c["false_yes"], c["true_no"]]], dtype=float)
        ax.axis("on")
        ax.imshow(m, cmap="Blues", vmin=0, vmax=max(1.0, m.max()))
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{int(v)}", ha="center", va="center",
                    color="white" if v > 0.6 * max(1.0, m.max()) else "black", fontsize=9)
        acc = per[name]["accuracy"]
        ax.set_title(f"{name}\nacc {100 * acc:.0f}%" if math.isfinite(acc) else name, fontsize=8)
        ax.set_xticks([0, 1], ["yes", "no"], fontsize=7)
        ax.set_yticks([0, 1], ["holds", "not"], fontsize=7)
        if c["failed"]:
            ax.set_xlabel(f"{c['failed']} failed", fontsize=7, color="darkred")
    fig.suptitle(title or "relation confusion (rows: truth, columns: answer; unambiguous pairs)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_reliability(summary: dict, path: str | os.PathLike, title: str = "") -> Path | None:
    """Reliability diagram of the relation confidences: accuracy against mean confidence per bin (marker
    area ~ answers), with the diagonal of perfect calibration."""
    cal = summary["relations"]["overall"]["calibration"]
    if not cal["table"]:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    rows = cal["table"]
    x = [r["mean_confidence"] for r in rows]
    y = [r["accuracy"] for r in rows]
    n = np.array([r["n"] for r in rows], dtype=float)
    ax.plot([0.5, 1.0], [0.5, 1.0], color="grey", lw=0.8, ls="--")
    ax.plot(x, y, color="tab:blue", lw=1)
    ax.scatter(x, y, s=20 + 200 * n / n.max(), color="tab:blue", zorder=3)
    for xi, yi, ni in zip(x, y, n):
        ax.annotate(f"{int(ni)}", (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlim(0.45, 1.02)
    ax.set_ylim(min(0.45, min(y) - 0.05), 1.02)
    ax.set_xlabel("mean confidence of the answer")
    ax.set_ylabel("accuracy")
    ax.set_title((title + "\n" if title else "") + f"ECE {cal['ece']:.3f}, {cal['n']} answers", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------- annotated frames
def draw_annotation(ann: FrameAnnotation) -> np.ndarray:
    """RGB image with boxes, labels, projected points and a caption strip under it."""
    img = np.ascontiguousarray(ann.image[..., :3]).copy()
    h, w = img.shape[:2]
    scale = max(0.35, min(0.6, w / 1100.0))
    for i, (label, (u0, v0, u1, v1)) in enumerate(ann.boxes):
        col = _PALETTE[i % len(_PALETTE)]
        cv2.rectangle(img, (int(u0), int(v0)), (int(u1), int(v1)), col, 2)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = max(int(v0) - 3, th + 2)
        cv2.rectangle(img, (int(u0), y - th - 3), (int(u0) + tw + 2, y + 2), col, -1)
        cv2.putText(img, label, (int(u0) + 1, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    for label, (u, v) in ann.points:
        if not (np.isfinite(u) and np.isfinite(v)):
            continue
        cv2.drawMarker(img, (int(round(u)), int(round(v))), (255, 255, 0), cv2.MARKER_CROSS, 12, 2)
        cv2.putText(img, label, (int(round(u)) + 6, int(round(v)) + 12), cv2.FONT_HERSHEY_SIMPLEX,
                    scale * 0.9, (255, 255, 0), 1, cv2.LINE_AA)
    width_chars = max(20, int(w / (11 * scale)))
    lines = [part for text in ([ann.title] if ann.title else []) + list(ann.lines)
             for part in (textwrap.wrap(text, width_chars, subsequent_indent="   ") or [""])]
    line_h = int(26 * scale / 0.5)
    strip = np.full((line_h * len(lines) + 8, w, 3), 30, np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(strip, text, (6, line_h * (k + 1) - 4), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([img, strip]) if lines else img


def save_annotation(ann: FrameAnnotation, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(draw_annotation(ann), cv2.COLOR_RGB2BGR))
    return path


# -------------------------------------------------------------------------------------------- markdown
def _pct(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.1f}%"


def _num(v, fmt="{:.1f}") -> str:
    return "n/a" if v is None or not math.isfinite(v) else fmt.format(v)


def _high(cal: dict) -> str:
    if not cal["n_high"]:
        return "n/a"
    return f"{_pct(cal['wrong_high_fraction'])} ({cal['wrong_high']} / {cal['n_high']})"


def _headline_table(runs: Sequence[RunResult]) -> list[str]:
    head = "| | " + " | ".join(r.name for r in runs) + " |"
    out = [head, "|---" * (len(runs) + 1) + "|"]
    rows = [
        ("**detector recall** (GT objects found / present)", lambda s: "{} ({} / {})".format(
            _pct(s["objects"]["recall"]), s["objects"]["found"], s["objects"]["present"])
         if "objects" in s else "n/a"),
        ("detector precision (found / node objects)", lambda s: "{} ({} / {})".format(
            _pct(s["objects"]["precision"]), s["objects"]["found"], s["objects"]["reported"])
         if "objects" in s else "n/a"),
        ("relation accuracy (unambiguous; missed objects count wrong)",
         lambda s: _pct(s["relations"]["overall"]["accuracy"])),
        ("relation facts scored / ambiguous / failed (service calls)", lambda s: "{} / {} / {} ({})".format(
            s["relations"]["overall"]["n_scored"], s["relations"]["overall"]["n_ambiguous"],
            s["relations"]["overall"]["n_failed"], s["relations"]["overall"]["n_askings"])),
        ("metric within +-10%", lambda s: _pct(s["quantities"]["overall"]["within_10pct"])),
        ("metric within +-25% (SpatialRGPT)", lambda s: _pct(s["quantities"]["overall"]["within_25pct"])),
        ("metric within [0.5x, 2x] (SpatialVLM)",
         lambda s: _pct(s["quantities"]["overall"]["within_half_double"])),
        ("distance within +-10%",
         lambda s: _pct(s["quantities"]["per_quantity"].get("distance", {}).get("within_10pct", math.nan))),
        ("quantities scored / failed", lambda s: "{} / {}".format(
            s["quantities"]["overall"]["n_scored"], s["quantities"]["overall"]["n_failed"])),
        ("median abs. error (cm)", lambda s: _num(100 * s["quantities"]["overall"]["abs_error_m"]["p50"])),
        ("metric errors within 2 sigma (coverage)",
         lambda s: _pct(s["quantities"]["overall"]["coverage_2sigma"]["coverage"])),
        ("relation confidence ECE (10 bins)",
         lambda s: _num(s["relations"]["overall"]["calibration"]["ece"], "{:.3f}")),
        ("wrong among answers at confidence >= 0.99", lambda s: _high(s["relations"]["overall"]["calibration"])),
        ("service latency p50 / p95 / p99 (ms)", lambda s: " / ".join(
            _num(s["latency_ms"]["all"][k]) for k in ("p50", "p95", "p99"))),
        ("frames published / processed / dropped", lambda s: "{} / {} / {}".format(
            s["frames"]["published"], s["frames"]["processed"], s["frames"]["dropped"])),
        ("questions about objects not found (counted wrong)",
         lambda s: str(s.get("questions_missed", "n/a"))),
    ]
    for label, fn in rows:
        out.append(f"| {label} | " + " | ".join(fn(r.summary) for r in runs) + " |")
    return out


def _coverage(c: dict) -> str:
    return "n/a" if not c["n"] else f"{_pct(c['coverage'])} ({c['covered']} / {c['n']})"


def _uncertainty_lines(s: dict) -> list[str]:
    """Reliability table of the relation confidences and the high-confidence errors (coverage per quantity
    is a column of the quantity table)."""
    cal = s["relations"]["overall"]["calibration"]
    if not cal["n"]:
        return ["", "### Uncertainty", "", "No confidences or uncertainties reported (none to calibrate)."]
    return ["", "### Uncertainty: relation confidence (reliability, ambiguous facts included)", "",
            f"{cal['n']} answered facts; ECE {_num(cal['ece'], '{:.3f}')}; mean confidence "
            f"{_num(cal['mean_confidence'], '{:.3f}')} vs accuracy {_num(cal['accuracy'], '{:.3f}')}; "
            f"wrong among answers at confidence >= {cal['high_threshold']:g}: {_high(cal)}. Metric errors "
            f"within 2 sigma: {_coverage(s['quantities']['overall']['coverage_2sigma'])}.", ""] \
        + list(reliability_lines(cal))


#: column headers of the metric success criteria (``scoring.SUCCESS_CRITERIA``)
CRITERION_LABELS = {"within_10pct": "within ±10 %", "within_25pct": "within ±25 %",
                    "within_half_double": "within [0.5x, 2x]"}


def criterion_text(check: dict, key: str) -> str:
    """An acceptance check's value or threshold: the ECE as a number (as every table shows it), else a
    percentage. A value that would print as its threshold gets more digits, so that a failing 0.53 % against
    0.5 % does not read "0.5 % (<= 0.5 %) FAIL"."""
    def text(v, digits: int) -> str:
        if check["metric"] == "relation_ece":
            return _num(v, f"{{:.{digits + 2}f}}")
        return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.{digits}f}%"

    shown = text(check[key], 1)
    if key == "value" and shown == text(check["threshold"], 1) and check[key] != check["threshold"]:
        shown = text(check[key], 2)
    return shown


def _run_section(run: RunResult, plots: dict[str, Path], out_dir: Path) -> list[str]:
    s = run.summary
    md = [f"## {run.name}", ""]
    md += [f"- {n}" for n in run.notes] + ([""] if run.notes else [])
    md += ["### Acceptance", "", "| criterion | value | threshold | |", "|---|---|---|---|"]
    for c in s["acceptance"]:
        value = criterion_text
        md.append(f"| {c['criterion']} | {value(c, 'value')} | {c.get('direction', '>=')} {value(c, 'threshold')} | "
                  f"{'pass' if c['passed'] else '**FAIL**'} |")
    md += ["", "### Relations (each fact once, on unambiguous pairs; failures and contradicting askings count "
           "as wrong)", "",
           "| relation | scored | correct | accuracy | yes/no wrong | contradicting | failed | "
           "ambiguous (agreement) | askings | ECE |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for name, b in s["relations"]["per_relation"].items():
        c = b["confusion"]
        md.append(f"| {name} | {b['n_scored']} | {b['correct']} | {_pct(b['accuracy'])} | "
                  f"{c['false_yes']}/{c['false_no']} | {c.get('inconsistent', 0)} | {b['n_failed']} | "
                  f"{b['n_ambiguous']} ({_pct(b['ambiguous_agreement'])}) | {b['n_askings']} | "
                  f"{_num(b['calibration']['ece'], '{:.3f}')} |")
    crit = " | ".join(CRITERION_LABELS.get(n, n) for n, _, _ in SUCCESS_CRITERIA)
    md += ["", "### Quantities (metres; relative criteria on truths >= "
           f"{100 * s['quantities']['min_truth_m']:.0f} cm)", "",
           f"| quantity | scored | failed | median abs err (cm) | p90 abs err (cm) | median rel err | "
           f"mean signed rel err | {crit} | near-zero truths (median abs err cm) | within 2 sigma |",
           "|---" * (9 + len(SUCCESS_CRITERIA)) + "|"]
    for name, b in list(s["quantities"]["per_quantity"].items()) + [("**all**", s["quantities"]["overall"])]:
        md.append(f"| {name} | {b['n_scored']} | {b['n_failed']} | {_num(100 * b['abs_error_m']['p50'])} | "
                  f"{_num(100 * b['abs_error_m']['p90'])} | {_pct(b['rel_error']['p50'])} | "
                  f"{_pct(b['mean_signed_rel_error'])} | "
                  + " | ".join(_pct(b[n]) for n, _, _ in SUCCESS_CRITERIA)
                  + f" | {b['n_near_zero']} ({_num(100 * b['near_zero_abs_error_m']['p50'])}) | "
                  f"{_coverage(b['coverage_2sigma'])} |")
    md += _uncertainty_lines(s)
    lat = s["latency_ms"]
    md += ["", "### Latency (ms) and frames", "", "| | n | p50 | p95 | p99 | max |", "|---|---|---|---|---|---|"]
    for k in ("relation", "quantity", "all"):
        v = lat[k]
        md.append(f"| service round trip, {k} | {v['n']} | {_num(v['p50'])} | {_num(v['p95'])} | "
                  f"{_num(v['p99'])} | {_num(v['max'])} |")
    fl = s["frames"]["frame_latency_ms"]
    md.append(f"| frame published -> objects out | {fl['n']} | {_num(fl['p50'])} | {_num(fl['p95'])} | "
              f"{_num(fl['p99'])} | {_num(fl['max'])} |")
    f = s["frames"]
    md += ["", f"Frames: {f['published']} published, {f['processed']} processed, {f['dropped']} dropped"
           + (f" (node's own count: {f['node_dropped']})" if f.get("node_dropped") is not None else "") + ".", ""]
    md += _scene_query_lines(run)
    fb = failure_breakdown(run.records)
    if fb["service_failures"] or fb["wrong_relations"]:
        md += ["### Failures", ""]
        md += [f"- service failure x{n}: `{m}`" for m, n in fb["service_failures"].items()]
        md += [f"- wrong answer x{n}: {m}" for m, n in fb["wrong_relations"].items()]
        md.append("")
    for key, caption in (("error", "Error vs distance"), ("confusion", "Confusion per relation"),
                         ("reliability", "Reliability diagram")):
        if key in plots:
            md += [f"![{caption}]({plots[key].relative_to(out_dir).as_posix()})", ""]
    return md


def _scene_query_lines(run: RunResult, examples: int = 6) -> list[str]:
    """``~/find`` and ``~/check_placement`` against the ground truth (``scene_query_truth``)."""
    sq = run.summary.get("scene_queries")
    if not sq:
        return []
    md = ["### Scene queries (~/find, ~/check_placement; objects not found count as wrong)", "",
          "| query | asked | unambiguous | answered | reference not found | accuracy | placement: \"fits\" poses "
          "truly free | free width within ±10 % |", "|---|---|---|---|---|---|---|---|"]
    for kind, b in sq.items():
        extra = (f"{_pct(b['fits_pose_free'])} | {_pct(b['free_width_within_10pct'])}" if kind == "placement"
                 else "— | —")
        md.append(f"| {kind} | {b['queries']} | {b['unambiguous']} | {b['answered']} | {b['missed']} | "
                  f"{_pct(b['accuracy'])} | {extra} |")
    wrong = [r for r in run.scene_records if not r.ambiguous and not r.correct][:examples]
    if wrong:
        md += ["", "Wrong or unanswered (first few):", ""]
        md += [f"- {r.query}: truth `{r.truth}`, answer `{r.predicted}`"
               + (f" (true margin at the pose {100 * r.pose_margin_m:+.1f} cm)" if r.pose_margin_m is not None else "")
               + ("" if r.success else f" — {r.message}") for r in wrong]
    return md + [""]


def write_report(out_dir: str | os.PathLike, runs: Sequence[RunResult], title: str = "Evaluation report",
                 annotations: Sequence[FrameAnnotation] = (), meta: dict | None = None,
                 preamble: Sequence[str] = ()) -> dict[str, Path]:
    """Write ``results.json``, ``report.md``, plots and annotated frames under ``out_dir``; return paths."""
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"json": write_results_json(out / "results.json", runs, meta)}
    md = [f"# {title}", ""] + list(preamble) + ([""] if preamble else [])
    if meta:
        md += [f"- {k}: {v}" for k, v in meta.items()] + [""]
    md += ["## Summary", ""] + _headline_table(runs) + [""]
    md += ["Every visible ground-truth object is scored: detector recall is the share of them a node object "
           "matched (one-to-one, by 3D center), precision the share of the node's objects that matched one, "
           "and a question about an object the node did not find counts as wrong (never skipped). "
           "Each fact is scored once: the askings of one fact (left_of(A, B), right_of(B, A) and the negated "
           "left_of(B, A), right_of(A, B); distance(A, B) and distance(B, A)) are merged, and a relation fact "
           "is right only when every asking of it was answered right. "
           "Criteria: relation accuracy counts only pairs whose truth is beyond the definition's margin "
           "(ambiguous pairs are listed, not scored) and counts failed calls as wrong. Metric success: "
           "|pred - truth| <= 10 % / 25 % of truth (SpatialRGPT-Bench uses 25 %), or pred/truth in [0.5, 2] "
           "(SpatialVLM). Uncertainty: coverage is the share of metric answers with |pred - truth| <= 2 "
           "reported sigmas (0.954 if calibrated); ECE compares the relation confidences with their accuracy "
           "over 10 equal-width bins. Latency is the service round trip seen by an rclpy client. "
           "The naive baseline (where shown) answers the same questions from the median depth point of each "
           "ground-truth mask with the camera's -y as up, and reports no uncertainty.", ""]
    for run in runs:
        slug = "".join(ch if ch.isalnum() else "_" for ch in run.name)
        plots = {}
        p = plot_error_vs_distance(run.records, out / "plots" / f"{slug}_error_vs_distance.png",
                                   f"{run.name}: metric error vs distance")
        if p:
            plots["error"] = p
        p = plot_relation_confusion(run.summary, out / "plots" / f"{slug}_confusion.png",
                                    f"{run.name}: confusion per relation (unambiguous pairs)")
        if p:
            plots["confusion"] = p
        p = plot_reliability(run.summary, out / "plots" / f"{slug}_reliability.png",
                             f"{run.name}: relation confidence reliability")
        if p:
            plots["reliability"] = p
        paths.update({f"{slug}_{k}": v for k, v in plots.items()})
        md += _run_section(run, plots, out)
    if annotations:
        md += ["## Annotated frames", "",
               "Boxes: ground-truth instance boxes and labels; crosses: object centers the node published "
               "on `~/objects` for that frame, projected with the camera intrinsics.", ""]
        for i, ann in enumerate(annotations):
            p = save_annotation(ann, out / "frames" / f"frame_{i:02d}.png")
            paths[f"frame_{i}"] = p
            md += [f"![frame {i}]({p.relative_to(out).as_posix()})", ""]
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text("\n".join(md) + "\n")
    return paths


def records_table(records: Sequence[QueryRecord], limit: int = 30) -> list[str]:
    """Plain-text lines 'question | package | truth' for printing a few answers next to ground truth."""
    lines = []
    for r in list(relation_records(records))[:limit // 2] + list(quantity_records(records))[:limit // 2]:
        if r.kind == "relation":
            pred = "failed" if not r.answered else ("yes" if r.predicted else "no")
            truth = ("yes" if r.truth else "no") + (" (ambiguous)" if r.ambiguous else "")
            q = f"{r.subject} {r.name} {r.reference}?"
        else:
            pred = "failed" if not r.answered else f"{float(r.predicted):.3f} m"
            truth = f"{float(r.truth):.3f} m"
            q = f"{r.name}({r.subject}{', ' + r.reference if r.reference else ''})"
        lines.append(f"{q:<52} {pred:>10}  truth {truth}")
    return lines

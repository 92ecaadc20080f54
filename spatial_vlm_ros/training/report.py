"""The compact VLM's generated report: ``report.md``, ``results.json`` and PNG plots (learning curves,
per-relation What's Up accuracy, distance error against the true distance), written by
:func:`spatial_vlm_ros.training.evaluate_vlm.run` with ``--report DIR``."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from spatial_vlm_ros.evaluation.whatsup import PREPOSITIONS


def read_log(model_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """``(train records, eval records)`` of ``train_log.jsonl`` in ``model_dir`` (empty when absent). A resumed
    run appends to the log; records of steps repeated after a resume keep only their last occurrence."""
    path = Path(model_dir) / "train_log.jsonl"
    if not path.is_file():
        return [], []
    by_key: dict[tuple[str, int], dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            by_key[(rec.get("type", ""), int(rec.get("step", 0)))] = rec
    recs = [by_key[k] for k in sorted(by_key, key=lambda k: k[1])]
    return [r for r in recs if r.get("type") == "train"], [r for r in recs if r.get("type") == "eval"]


def _fmt(x) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def plot_learning_curves(model_dir, path: Path) -> bool:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, evals = read_log(model_dir)
    if not train:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss", lw=1)
    if evals:
        a.plot([r["step"] for r in evals], [r["eval_loss"] for r in evals], "o-", label="eval loss")
        for kind in sorted({k for r in evals for k in r["exact_match"]}):
            b.plot([r["step"] for r in evals], [r["exact_match"].get(kind, float("nan")) for r in evals], "o-",
                   label=kind)
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_ylabel("loss (nats / answer token)")
    a.legend()
    b.set_xlabel("step")
    b.set_ylabel("exact match (held-out rows)")
    b.set_ylim(0, 1)
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_per_relation(rows, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    shown = [r for r in rows if not r.name.startswith("trained, ")]
    preps = [p for p in PREPOSITIONS if any(p in r.whatsup.per_preposition for r in shown)]
    x = np.arange(len(preps))
    width = 0.8 / max(len(shown), 1)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for i, r in enumerate(shown):
        acc = [r.whatsup.per_preposition[p].accuracy if p in r.whatsup.per_preposition else np.nan for p in preps]
        ax.bar(x + i * width, acc, width, label=r.name)
    ax.axhline(0.25, color="grey", ls="--", lw=1, label="chance (4 captions)")
    ax.set_xticks(x + width * (len(shown) - 1) / 2, preps)
    ax.set_ylim(0, 1)
    ax.set_ylabel("What's Up accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_distance_error(rows, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for r in rows:
        if r.name.startswith("trained, "):
            continue
        pts = [(t, e / t) for t, e in r.metric.pairs if e is not None and e > 0]
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, alpha=0.6, label=r.name)
    for y, style in ((1.0, "-"), (0.5, ":"), (2.0, ":"), (0.75, "--"), (1.25, "--")):
        ax.axhline(y, color="grey", ls=style, lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("true center distance (m)")
    ax.set_ylabel("estimate / truth (dotted: 0.5x, 2x; dashed: ±25%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(report_dir: str | Path, rows: Sequence, model_dir, seed: int, n_sets: int,
                 image_size: tuple[int, int], info: dict) -> Path:
    """Write ``report.md``, ``results.json`` and the plots to ``report_dir``; returns the markdown path."""
    from spatial_vlm_ros.training.evaluate_vlm import final_line, table

    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    has_curves = plot_learning_curves(model_dir, out / "learning_curves.png")
    plot_per_relation(rows, out / "per_relation_accuracy.png")
    plot_distance_error(rows, out / "distance_error.png")
    trained = rows[0]
    results = [{"system": r.name, "accuracy": r.whatsup.accuracy, "pair_accuracy": r.whatsup.pair_accuracy,
                "set_accuracy": r.whatsup.set_accuracy, "n_examples": r.whatsup.n_examples,
                "per_preposition": {p: s.accuracy for p, s in r.whatsup.per_preposition.items()},
                "metric_within_2x": r.metric.within_2x, "metric_within_25": r.metric.within_25,
                "metric_read": r.metric.read, "metric_n": r.metric.n,
                "median_rel_error": r.metric.median_rel_error} for r in rows]
    (out / "results.json").write_text(json.dumps({"model": str(model_dir), "seed": seed, "sets_per_kind": n_sets,
                                                  "image_size": list(image_size), "rows": results,
                                                  "training": info}, indent=1, default=str))
    per = [f"| {p} | " + " | ".join(_fmt(r.whatsup.per_preposition[p].accuracy)
                                    if p in r.whatsup.per_preposition else "n/a"
                                    for r in rows if not r.name.startswith("trained, ")) + " |"
           for p in PREPOSITIONS]
    names = [r.name for r in rows if not r.name.startswith("trained, ")]
    train_line = "no training log" if not info else (
        f"preset `{info.get('preset', {}).get('name', '?')}`, seed {info.get('seed')}, "
        f"{info.get('rows', {}).get('train', '?')} training rows, {info.get('steps')} steps "
        f"({info.get('epochs_done', float('nan')):.2f} epochs, stopped by {info.get('stopped_by')}), "
        f"{info.get('parameters', {}).get('total', 0) / 1e6:.2f} M parameters; command `{info.get('command', '')}`")
    md = [
        "# Compact spatial VLM: evaluation report",
        "",
        f"Model `{model_dir}` ({train_line}).",
        "",
        f"Frames: What's-Up-style controlled sets (analytic renderer), {n_sets} sets per kind (on_under, "
        f"front_behind), {image_size[0]}x{image_size[1]} px, seed {seed} (not a training seed). "
        "Chance: accuracy 0.25, pair 0.0625, set 0.0039. Distances: the synthesis templates' distance question, "
        "answers read by `answer_parsing`; unread answers count as wrong.",
        "",
        "```",
        table(rows),
        "```",
        "",
        "## Per preposition (accuracy)",
        "",
        "| preposition | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
        *per,
        "",
        "![per-relation accuracy](per_relation_accuracy.png)",
        "",
        "## Distances",
        "",
        "| system | within [0.5x, 2x] | within ±25% | read | median relative error |",
        "|---|---|---|---|---|",
        *[f"| {r.name} | {_fmt(r.metric.within_2x)} | {_fmt(r.metric.within_25)} | {r.metric.read}/{r.metric.n} | "
          f"{_fmt(r.metric.median_rel_error)} |" for r in rows],
        "",
        "![distance error](distance_error.png)",
        "",
    ]
    if has_curves:
        md += ["## Learning curves", "", "![learning curves](learning_curves.png)", ""]
    md += ["## Trained model, What's Up detail", "", "```", trained.whatsup.table(), "```", "",
           "Final line:", "", "```", final_line(trained), "```", ""]
    path = out / "report.md"
    path.write_text("\n".join(md))
    return path

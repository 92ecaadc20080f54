"""Evaluating the compact spatial VLM on scenes of an unseen seed, beside the geometric engine and the
untrained model: ``spatial_vlm evaluate-vlm --model DIR --seed S [--sets N] [--report DIR]``.

Frames: What's-Up-style controlled sets of the analytic renderer
(:func:`spatial_vlm_ros.evaluation.whatsup_sets.generate_sets`, kinds ``on_under`` and ``front_behind``,
``--sets`` sets of each), rendered at the training image size, with depth, instance masks and the
simulator's true object centers. On every frame:

- What's Up caption ranking (:func:`spatial_vlm_ros.evaluation.whatsup.evaluate`): a VLM scores each caption
  by its log-likelihood as the answer to the describe question ``DESCRIBE_PROMPT`` about the two objects
  (``TransformersEngine.score_captions``); the geometric engine lifts the frame with the package's pipeline
  (depth + masks, :class:`spatial_vlm_ros.synthesis.lift.Lifter`) and scores each caption by the probability
  that its relation holds (``core.relations.evaluate``: its confidence if it holds, one minus it if not).
- Distances: the synthesis templates' distance question; a VLM's generated answer is read with
  :func:`spatial_vlm_ros.vlm.answer_parsing.read_answer` (an unread answer counts as wrong), the geometric
  engine measures ``core.quantities.measure("distance")``; both against the true center-to-center distance,
  scored within [0.5x, 2x] (SpatialVLM) and within +-25 % (SpatialRGPT).
- Models: the trained model; the untrained one (same config and tokenizer, random weights); the Beyond
  Semantics interventions (:mod:`spatial_vlm_ros.vlm.interventions`: vision-token norm "text_mean", vision
  features from the tower's middle layer) each on/off on the trained model.

Prints tables and ends with exactly one line for the trained model:
``whatsup: accuracy <a> pair <p> set <s>; metric [0.5x,2x] <m2> ±25% <m25>``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.evaluation.whatsup import WhatsUpExample, WhatsUpResult, evaluate
from spatial_vlm_ros.evaluation.whatsup_sets import SET_KINDS, generate_sets

#: What's Up preposition -> (relation of ``core.relations.RELATIONS``, whether subject and reference swap):
#: the synthesis templates' own decision (``templates.describe_preposition``: "under" = b on top of a).
PREPOSITION_RELATIONS = {"left of": ("left_of", False), "right of": ("right_of", False),
                         "in front of": ("in_front_of", False), "behind": ("behind", False),
                         "on": ("on_top_of", False), "under": ("on_top_of", True)}


def describe_prompt(subject: str, reference: str) -> str:
    """The synthesis templates' describe question about ``subject`` and ``reference``."""
    from spatial_vlm_ros.synthesis.templates import DESCRIBE_PROMPT

    return DESCRIBE_PROMPT.format(a=subject, b=reference)


def distance_question(subject: str, reference: str) -> str:
    """The synthesis templates' first phrasing of the distance question about the two objects."""
    from spatial_vlm_ros.synthesis.templates import METRIC_PHRASINGS

    return METRIC_PHRASINGS["distance"][0].format(a=subject, b=reference)


# -- frames ---------------------------------------------------------------------------------------------------
@dataclass
class ControlledFrame:
    """A What's Up example with the true distance between the two object centers (metres)."""

    example: WhatsUpExample
    true_distance_m: float

    @property
    def subject(self) -> str:
        return self.example.meta["subject"]

    @property
    def reference(self) -> str:
        return self.example.meta["reference"]


def controlled_frames(n_sets: int, seed: int, width: int, height: int) -> list[ControlledFrame]:
    """``n_sets`` sets of each kind (analytic renderer, depth and masks), with the true center distances.

    The examples are those of :func:`generate_sets`; the distances come from re-drawing the same sets with its
    renderer, which keeps the simulator's object truth (checked image by image).
    """
    from spatial_vlm_ros.evaluation import whatsup_sets as ws

    frames = []
    for kind in sorted(SET_KINDS):
        examples = generate_sets(n_sets, kind, seed=seed, width=width, height=height, with_depth=True,
                                 renderer="analytic")
        rng = np.random.default_rng(seed)
        truths = []
        for _ in range(n_sets):
            for _ in range(ws.MAX_REDRAWS):
                drawn = list(ws._analytic_set(rng, kind, width, height, None))
                if all(ws._both_visible(f.mask, width * height) for f, _, _ in drawn):
                    break
            truths.extend(f for f, _, _ in drawn)
        for ex, f in zip(examples, truths, strict=True):
            if not np.array_equal(ex.image, f.rgb):
                raise InputError("the What's Up set generator no longer matches its re-drawing")
            centers = {o.instance_id: o.center_c for o in f.objects}
            frames.append(ControlledFrame(ex, float(np.linalg.norm(centers[1] - centers[2]))))
    return frames


# -- scorers --------------------------------------------------------------------------------------------------
class _ByImage:
    """Finds the controlled frame an image belongs to (``evaluate`` passes each example's own array)."""

    def __init__(self, frames: Sequence[ControlledFrame]):
        self.frames = {id(f.example.image): f for f in frames}

    def frame(self, image) -> ControlledFrame:
        try:
            return self.frames[id(image)]
        except KeyError:
            raise InputError("image is not one of the evaluation frames") from None


class VLMScorer(_ByImage):
    """Caption log-likelihoods from a VLM engine under the describe question of the frame's two objects."""

    def __init__(self, engine, frames: Sequence[ControlledFrame]):
        super().__init__(frames)
        self.engine = engine

    def score_captions(self, image, captions):
        f = self.frame(image)
        return self.engine.score_captions(image, list(captions), prompt=describe_prompt(f.subject, f.reference))


@dataclass
class Lifted:
    subject: object | None
    reference: object | None
    scene: object
    noise: object


class GeometryScorer(_ByImage):
    """The geometric engine: each frame lifted from its depth and masks; a caption's score is the probability
    that its relation holds between the lifted subject and reference."""

    def __init__(self, frames: Sequence[ControlledFrame]):
        super().__init__(frames)
        from spatial_vlm_ros.synthesis.lift import Lifter

        self.lifter = Lifter()
        self._lifted: dict[int, Lifted] = {}

    def lifted(self, f: ControlledFrame) -> Lifted:
        key = id(f.example.image)
        if key not in self._lifted:
            from spatial_vlm_ros.sim.analytic import default_camera
            from spatial_vlm_ros.synthesis.frames import FrameInput

            ex = f.example
            h, w = ex.image.shape[:2]
            frame = FrameInput(rgb=ex.image, depth=ex.meta["depth"].astype(np.float32),
                               camera=default_camera(w, h), stamp_ns=0, source="whatsup", frame_index=0,
                               mask=ex.meta["mask"], ids=[1, 2], labels=[f.subject, f.reference],
                               scores=[1.0, 1.0])
            lifted = self.lifter.lift(frame)
            by_label = {o.label: o for o in lifted.scene.objects}
            self._lifted[key] = Lifted(by_label.get(f.subject), by_label.get(f.reference), lifted.scene,
                                       self.lifter.config.pipeline.noise)
        return self._lifted[key]

    def score_captions(self, image, captions):
        from spatial_vlm_ros.core.relations import evaluate as relation

        f = self.frame(image)
        lf = self.lifted(f)
        preps = list(SET_KINDS[f.example.meta["kind"]])
        if list(captions) != list(f.example.captions):
            raise InputError("captions differ from the frame's own")
        if lf.subject is None or lf.reference is None:
            return np.zeros(len(preps))                           # nothing lifted: a tie, counted wrong
        scores = []
        for p in preps:
            name, swap = PREPOSITION_RELATIONS[p]
            a, b = (lf.reference, lf.subject) if swap else (lf.subject, lf.reference)
            r = relation(name, a, b, lf.scene, lf.noise)
            scores.append(r.confidence if r.holds else 1.0 - r.confidence)
        return np.asarray(scores)

    def distance(self, f: ControlledFrame) -> float | None:
        from spatial_vlm_ros.core.quantities import measure

        lf = self.lifted(f)
        if lf.subject is None or lf.reference is None:
            return None
        return measure("distance", lf.subject, lf.reference, lf.scene, lf.noise).value_m


def vlm_distances(engine, frames: Sequence[ControlledFrame], batch_size: int = 16) -> list[tuple[str, float | None]]:
    """``(answer text, read metres or None)`` of the engine's greedy answers to the distance question."""
    from spatial_vlm_ros.vlm.answer_parsing import read_answer
    from spatial_vlm_ros.vlm.engine import GenerationOptions, VLMRequest

    out = []
    options = GenerationOptions(max_new_tokens=16)
    for i in range(0, len(frames), batch_size):
        chunk = frames[i:i + batch_size]
        answers = engine.generate([VLMRequest(distance_question(f.subject, f.reference), f.example.image)
                                   for f in chunk], options)
        for a in answers:
            reading = read_answer("metric", a.text)
            out.append((a.text, reading.value if reading.parsed else None))
    return out


# -- metrics --------------------------------------------------------------------------------------------------
@dataclass
class MetricResult:
    """Distance estimates against the truth: fractions within [0.5x, 2x] and within +-25 % (unread = wrong)."""

    n: int
    read: int
    within_2x: float
    within_25: float
    median_rel_error: float
    pairs: list[tuple[float, float | None]] = field(default_factory=list)   # (truth, estimate) metres


def metric_result(truths: Sequence[float], estimates: Sequence[float | None]) -> MetricResult:
    if len(truths) != len(estimates) or not truths:
        raise InputError("distance truths and estimates must be non-empty and of equal length")
    ok2, ok25, rel = [], [], []
    for t, e in zip(truths, estimates):
        good = e is not None and math.isfinite(e) and e > 0
        ok2.append(good and 0.5 <= e / t <= 2.0)
        ok25.append(good and abs(e - t) <= 0.25 * t)
        if good:
            rel.append(abs(e - t) / t)
    return MetricResult(len(truths), sum(e is not None for e in estimates), float(np.mean(ok2)),
                        float(np.mean(ok25)), float(np.median(rel)) if rel else float("nan"),
                        list(zip(map(float, truths), estimates)))


@dataclass
class Row:
    """One evaluated system: What's Up result and distance metrics."""

    name: str
    whatsup: WhatsUpResult
    metric: MetricResult
    answers: list[str] = field(default_factory=list)


def evaluate_engine(name: str, engine, frames: Sequence[ControlledFrame]) -> Row:
    examples = [f.example for f in frames]
    result = evaluate(VLMScorer(engine, frames), examples)
    answered = vlm_distances(engine, frames)
    metric = metric_result([f.true_distance_m for f in frames], [v for _, v in answered])
    return Row(name, result, metric, [t for t, _ in answered])


def evaluate_geometry(frames: Sequence[ControlledFrame]) -> Row:
    scorer = GeometryScorer(frames)
    result = evaluate(scorer, [f.example for f in frames])
    metric = metric_result([f.true_distance_m for f in frames], [scorer.distance(f) for f in frames])
    return Row("geometric engine", result, metric)


def final_line(row: Row) -> str:
    w, m = row.whatsup, row.metric
    return (f"whatsup: accuracy {w.accuracy:.3f} pair {w.pair_accuracy:.3f} set {w.set_accuracy:.3f}; "
            f"metric [0.5x,2x] {m.within_2x:.3f} ±25% {m.within_25:.3f}")


def table(rows: Sequence[Row]) -> str:
    head = f"{'system':<40} {'acc':>6} {'pair':>6} {'set':>6} {'[0.5x,2x]':>9} {'±25%':>6} {'read':>6} {'n':>5}"
    lines = [head]
    for r in rows:
        w, m = r.whatsup, r.metric
        lines.append(f"{r.name:<40} {w.accuracy:>6.3f} {w.pair_accuracy:>6.3f} {w.set_accuracy:>6.3f} "
                     f"{m.within_2x:>9.3f} {m.within_25:>6.3f} {m.read / m.n:>6.2f} {w.n_examples:>5}")
    return "\n".join(lines)


def mid_layer(model_dir: str | Path) -> int:
    """The middle hidden-state index of the vision tower (``(blocks + 1) // 2``)."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    return (int(cfg.vision_config.num_hidden_layers) + 1) // 2


def training_info(model_dir: Path) -> dict:
    path = model_dir / "training.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def run(model_dir: str | Path, seed: int, n_sets: int = 50, report_dir: str | Path | None = None,
        width: int | None = None, height: int | None = None, ablations: bool = True, untrained: bool = True,
        log=print) -> list[Row]:
    """Evaluate (see the module doc); returns the rows, trained model first. Raises InputError for a missing
    model, a seed used in training, or bad counts."""
    from spatial_vlm_ros.training.compact import random_like, save_compact
    from spatial_vlm_ros.vlm.interventions import InterventionConfig
    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    model_dir = Path(model_dir).expanduser()
    if not (model_dir / "config.json").is_file():
        raise InputError(f"{model_dir} is not a model directory (no config.json)")
    if n_sets < 1:
        raise InputError("--sets must be at least 1")
    info = training_info(model_dir)
    used = set(info.get("train_seeds", [])) | set(info.get("eval_seeds", []))
    if seed in used:
        raise InputError(f"seed {seed} was used to train {model_dir} (seeds {sorted(used)}); pick an unseen one")
    data = info.get("preset", {}).get("data", {})
    width, height = width or data.get("width", 96), height or data.get("height", 72)
    frames = controlled_frames(n_sets, seed, width, height)
    log(f"{len(frames)} controlled frames ({n_sets} sets per kind, {width}x{height} px, seed {seed})")
    rows = [evaluate_engine("trained", TransformersEngine(str(model_dir)), frames)]
    log(f"trained model done: {final_line(rows[0])}")
    rows.append(evaluate_geometry(frames))
    if untrained:
        with tempfile.TemporaryDirectory() as tmp:
            save_compact(*random_like(model_dir, seed=seed), tmp)
            rows.append(evaluate_engine("untrained (random init)", TransformersEngine(tmp), frames))
    if ablations:
        k = mid_layer(model_dir)
        for norm in ("off", "text_mean"):
            for layer in (None, k):
                if norm == "off" and layer is None:
                    continue                                      # = the trained row
                cfg = InterventionConfig(vision_norm=norm, vision_layer=layer)
                name = f"trained, norm {norm}, layer {'default' if layer is None else layer}"
                rows.append(evaluate_engine(name, TransformersEngine(str(model_dir), interventions=cfg), frames))
    if report_dir is not None:
        from spatial_vlm_ros.training.report import write_report

        path = write_report(report_dir, rows, model_dir, seed, n_sets, (width, height), info)
        log(f"report written to {path}")
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spatial_vlm evaluate-vlm",
                                description="What's Up and distance figures of a compact VLM on an unseen seed")
    p.add_argument("--model", required=True, help="trained model directory")
    p.add_argument("--seed", type=int, required=True, help="scene seed (must not be a training seed)")
    p.add_argument("--sets", type=int, default=50, help="controlled sets per kind (4 frames each)")
    p.add_argument("--report", default=None, help="write the markdown report and plots here")
    p.add_argument("--no-ablations", action="store_true", help="skip the intervention rows")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rows = run(args.model, args.seed, n_sets=args.sets, report_dir=args.report,
                   ablations=not args.no_ablations)
    except InputError as err:
        print(f"spatial_vlm evaluate-vlm: {err}", file=sys.stderr)
        return 2
    trained = rows[0]
    print(trained.whatsup.table())
    print(table(rows))
    print(final_line(trained))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

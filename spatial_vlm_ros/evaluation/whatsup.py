"""The What's Up caption-ranking protocol (Kamath et al., arXiv 2310.19785), for any scorer.

Each example is an image with candidate captions that differ only in the preposition ("the mug is to the
left of the bowl" / "... right of ..." / "... on ..." / "... under ..."). A scorer gives every caption a
score (a generative VLM: the caption's log-likelihood given the image; a contrastive model: image-text
similarity); the example is correct when the true caption's score is strictly the highest (ties count as
wrong).

Metrics, overall and per preposition of the true caption:
- accuracy: fraction of examples correct;
- pair accuracy: over pairs of examples of the same set whose true prepositions are opposites
  (left/right, on/under, in front of/behind), the fraction with both correct;
- set accuracy: over sets (the same two objects, only their relation changed), the fraction with every
  example correct.
Chance level for 4 captions is 25% accuracy, 6.25% pair and 0.4% set accuracy.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from spatial_vlm_ros.core.errors import InputError

OPPOSITES = {"left of": "right of", "right of": "left of", "on": "under", "under": "on",
             "in front of": "behind", "behind": "in front of"}
PREPOSITIONS = tuple(OPPOSITES)


class CaptionScorer(Protocol):
    """Anything that scores captions against an image (higher = better match); every VLM engine is one."""

    def score_captions(self, image: np.ndarray, captions: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class WhatsUpExample:
    """One image with its candidate captions; ``captions[correct]`` is the true one."""

    image: np.ndarray             # (H, W, 3) uint8 RGB
    captions: tuple[str, ...]
    correct: int
    preposition: str              # preposition of the true caption, one of PREPOSITIONS
    set_id: str                   # examples of one set show the same two objects
    meta: dict = field(default_factory=dict, compare=False)

    def validate(self) -> None:
        if self.preposition not in OPPOSITES:
            raise InputError(f"unknown preposition {self.preposition!r}; known: {PREPOSITIONS}")
        if not 0 <= self.correct < len(self.captions) or len(self.captions) < 2:
            raise InputError(f"example of set {self.set_id!r}: needs >= 2 captions and a valid correct index")


@dataclass(frozen=True)
class Outcome:
    """The scored result of one example (what the metrics need)."""

    set_id: str
    preposition: str
    correct: bool


@dataclass
class GroupStats:
    n_examples: int = 0
    accuracy: float = float("nan")
    n_pairs: int = 0
    pair_accuracy: float = float("nan")


@dataclass
class WhatsUpResult:
    """Overall and per-preposition metrics (fractions in [0, 1]; NaN where a group has no member)."""

    accuracy: float
    pair_accuracy: float
    set_accuracy: float
    n_examples: int
    n_pairs: int
    n_sets: int
    per_preposition: dict[str, GroupStats]

    def table(self) -> str:
        """A plain-text table for reports."""
        rows = [f"{'preposition':<12} {'n':>4} {'acc':>6} {'pairs':>5} {'pair acc':>8}"]
        for p, s in self.per_preposition.items():
            rows.append(f"{p:<12} {s.n_examples:>4} {s.accuracy:>6.3f} {s.n_pairs:>5} {s.pair_accuracy:>8.3f}")
        rows.append(f"{'all':<12} {self.n_examples:>4} {self.accuracy:>6.3f} {self.n_pairs:>5} "
                    f"{self.pair_accuracy:>8.3f}   set acc {self.set_accuracy:.3f} over {self.n_sets} sets")
        return "\n".join(rows)


def is_correct(scores: np.ndarray, correct: int) -> bool:
    """True when ``scores[correct]`` is strictly greater than every other score."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not np.all(np.isfinite(s)):
        raise InputError("caption scores must be a finite 1-D array")
    others = np.delete(s, correct)
    return bool(s[correct] > others.max())


def metrics(outcomes: Sequence[Outcome]) -> WhatsUpResult:
    """What's Up metrics of scored examples (see the module doc)."""
    if not outcomes:
        raise InputError("no examples to evaluate")
    by_set: dict[str, dict[str, bool]] = defaultdict(dict)
    for o in outcomes:
        if o.preposition in by_set[o.set_id]:
            raise InputError(f"set {o.set_id!r} has two examples with preposition {o.preposition!r}")
        by_set[o.set_id][o.preposition] = o.correct
    per: dict[str, list[bool]] = defaultdict(list)
    pairs: dict[str, list[bool]] = defaultdict(list)     # keyed by each member preposition
    all_pairs: list[bool] = []
    for preps in by_set.values():
        for p, ok in preps.items():
            per[p].append(ok)
        for p in preps:
            q = OPPOSITES[p]
            if q in preps and p < q:                     # count each unordered pair once
                both = preps[p] and preps[q]
                all_pairs.append(both)
                pairs[p].append(both)
                pairs[q].append(both)
    per_prep = {}
    for p in PREPOSITIONS:
        if p in per:
            per_prep[p] = GroupStats(len(per[p]), float(np.mean(per[p])), len(pairs[p]),
                                     float(np.mean(pairs[p])) if pairs[p] else float("nan"))
    return WhatsUpResult(
        accuracy=float(np.mean([o.correct for o in outcomes])),
        pair_accuracy=float(np.mean(all_pairs)) if all_pairs else float("nan"),
        set_accuracy=float(np.mean([all(v.values()) for v in by_set.values()])),
        n_examples=len(outcomes), n_pairs=len(all_pairs), n_sets=len(by_set), per_preposition=per_prep)


def score_examples(scorer: CaptionScorer, examples: Sequence[WhatsUpExample]) -> list[Outcome]:
    """Score every example's captions with ``scorer``."""
    outcomes = []
    for ex in examples:
        ex.validate()
        scores = np.asarray(scorer.score_captions(ex.image, list(ex.captions)), dtype=np.float64)
        if scores.shape != (len(ex.captions),):
            raise InputError(f"scorer returned {scores.shape} scores for {len(ex.captions)} captions")
        outcomes.append(Outcome(ex.set_id, ex.preposition, is_correct(scores, ex.correct)))
    return outcomes


def evaluate(scorer: CaptionScorer, examples: Sequence[WhatsUpExample]) -> WhatsUpResult:
    """Run the protocol end to end: score, then compute the metrics."""
    return metrics(score_examples(scorer, examples))


def main(argv=None) -> int:
    """CLI: score generated What's-Up-style sets with a model.

    ``python -m spatial_vlm_ros.evaluation.whatsup --model DIR [--backend onnx] [--sets 10] [--kind on_under]
    [--renderer pyrender] [--tiny]`` (``--tiny``: a tiny random LLaVA instead of --model; meaningless numbers).
    """
    import argparse
    import tempfile

    from spatial_vlm_ros.evaluation.whatsup_sets import SET_KINDS, generate_sets
    from spatial_vlm_ros.vlm.engine import BACKENDS, EngineSettings, load_engine

    parser = argparse.ArgumentParser(description="What's Up caption ranking on simulated controlled sets")
    parser.add_argument("--model", default="")
    parser.add_argument("--backend", choices=BACKENDS, default="transformers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sets", type=int, default=5)
    parser.add_argument("--kind", choices=sorted(SET_KINDS), default="on_under")
    parser.add_argument("--renderer", choices=["pyrender", "analytic"], default="pyrender")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="tiny random LLaVA (numbers are meaningless)")
    a = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model = a.model
        if a.tiny:
            from spatial_vlm_ros.vlm.tiny_models import save_tiny_model

            model = str(save_tiny_model(tmp, "llava"))
        if not model:
            parser.error("give --model or --tiny")
        engine = load_engine(EngineSettings(model=model, backend=a.backend, device=a.device))
        examples = generate_sets(a.sets, a.kind, seed=a.seed, renderer=a.renderer)
        result = evaluate(engine, examples)
    print(f"What's Up ({a.kind}, {a.sets} sets, {a.renderer}) with {'a TINY RANDOM model' if a.tiny else model}"
          f" ({a.backend}); chance: accuracy 0.25, pair 0.0625, set 0.0039")
    print(result.table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

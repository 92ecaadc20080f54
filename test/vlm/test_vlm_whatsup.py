"""What's Up metrics on a hand-checked toy case, the controlled set generator, and the protocol end to end
with a tiny random model (its numbers mean nothing; the test checks that the protocol runs and counts)."""
import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.evaluation.whatsup import Outcome, WhatsUpExample, evaluate, is_correct, metrics
from spatial_vlm_ros.evaluation.whatsup_sets import SET_KINDS, generate_sets


def test_metrics_hand_checked_toy_case():
    # set A: all four right; set B: "right of" wrong, the rest right; set C: only "on" present, wrong.
    outcomes = [Outcome("A", p, True) for p in ("left of", "right of", "on", "under")]
    outcomes += [Outcome("B", "left of", True), Outcome("B", "right of", False),
                 Outcome("B", "on", True), Outcome("B", "under", True)]
    outcomes += [Outcome("C", "on", False)]
    r = metrics(outcomes)
    assert r.accuracy == pytest.approx(7 / 9)
    assert r.n_pairs == 4                               # A l/r, A on/under, B l/r, B on/under (C has no pair)
    assert r.pair_accuracy == pytest.approx(3 / 4)
    assert r.n_sets == 3 and r.set_accuracy == pytest.approx(1 / 3)
    p = r.per_preposition
    assert (p["left of"].n_examples, p["left of"].accuracy) == (2, 1.0)
    assert (p["right of"].n_examples, p["right of"].accuracy) == (2, 0.5)
    assert (p["on"].n_examples, p["on"].accuracy) == (3, pytest.approx(2 / 3))
    assert p["left of"].pair_accuracy == 0.5 and p["on"].pair_accuracy == 1.0
    assert p["on"].n_pairs == 2
    assert "in front of" not in p
    assert "set acc 0.333 over 3 sets" in r.table()


def test_ties_are_wrong_and_bad_input_raises():
    assert is_correct(np.array([-1.0, -2.0]), 0)
    assert not is_correct(np.array([-1.0, -1.0]), 0)
    with pytest.raises(InputError):
        is_correct(np.array([np.nan, 0.0]), 0)
    with pytest.raises(InputError, match="two examples"):
        metrics([Outcome("A", "on", True), Outcome("A", "on", False)])
    with pytest.raises(InputError):
        metrics([])


class TableScorer:
    """Scores looked up by image id: a stand-in for a model, to check that evaluate() wires scores through."""

    def __init__(self, table):
        self.table = table

    def score_captions(self, image, captions):
        return np.asarray(self.table[int(image[0, 0, 0])])


def test_evaluate_wires_scores_to_metrics():
    img = [np.full((2, 2, 3), k, np.uint8) for k in range(2)]
    caps = ("The a is to the left of the b.", "The a is to the right of the b.")
    examples = [WhatsUpExample(img[0], caps, 0, "left of", "s"), WhatsUpExample(img[1], caps, 1, "right of", "s")]
    r = evaluate(TableScorer({0: [-1.0, -3.0], 1: [-1.0, -3.0]}), examples)
    assert r.accuracy == 0.5 and r.pair_accuracy == 0.0 and r.set_accuracy == 0.0


def _check_relation(ex):
    """The rendered instance mask and depth (1 = subject, 2 = reference) show the captioned relation."""
    mask, depth = ex.meta["mask"], ex.meta["depth"]
    (vs, us), (vr, ur) = np.nonzero(mask == 1), np.nonzero(mask == 2)
    assert us.size > 20 and ur.size > 20, "both objects must be visible"
    du = us.mean() - ur.mean()                                   # image right
    dv = vs.mean() - vr.mean()                                   # image down
    dz = np.nanmedian(depth[mask == 1]) - np.nanmedian(depth[mask == 2])
    truth = {"left of": du < -5, "right of": du > 5, "in front of": dz < -0.05, "behind": dz > 0.05,
             "on": dv < -3 and abs(du) < 10, "under": dv > 3 and abs(du) < 10}
    assert truth[ex.preposition], (ex.preposition, du, dv, dz)


@pytest.mark.parametrize("renderer, n_sets", [("analytic", 2), ("pyrender", 1)])
@pytest.mark.parametrize("kind", sorted(SET_KINDS))
def test_generated_sets_change_only_the_relation(kind, renderer, n_sets):
    examples = generate_sets(n_sets, kind=kind, seed=5, width=160, height=120, with_depth=True,
                             renderer=renderer)
    assert len(examples) == 4 * n_sets
    for s in range(n_sets):
        group = examples[4 * s:4 * s + 4]
        assert len({ex.captions for ex in group}) == 1 and len(set(group[0].captions)) == 4
        assert [ex.preposition for ex in group] == list(SET_KINDS[kind])
        assert len({(ex.meta["subject"], ex.meta["reference"]) for ex in group}) == 1
        for ex in group:
            # captions differ only in the preposition phrase
            assert ex.captions[ex.correct].startswith(f"The {ex.meta['subject']} is ")
            assert ex.captions[ex.correct].endswith(f" the {ex.meta['reference']}.")
            _check_relation(ex)
        assert not np.array_equal(group[0].image, group[1].image)


def test_protocol_runs_end_to_end_with_a_tiny_model(torch_engine):
    examples = generate_sets(1, "on_under", seed=0, width=96, height=72, renderer="analytic")
    r = evaluate(torch_engine, examples)
    assert r.n_examples == 4 and r.n_sets == 1 and r.n_pairs == 2
    assert 0.0 <= r.accuracy <= 1.0

"""Each two-way fact is scored once: mirror askings merged, all askings must be right."""
import itertools

import numpy as np
import pytest

from spatial_vlm_ros.core import relations as R
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.observation import TrackedObject
from spatial_vlm_ros.core.quantities import QUANTITIES
from spatial_vlm_ros.core.scene import Scene
from spatial_vlm_ros.evaluation.facts import ANTISYMMETRIC, ORDERED, SYMMETRIC, canonical_asking, fact_key, merge_facts
from spatial_vlm_ros.evaluation.records import QueryRecord
from spatial_vlm_ros.evaluation.scoring import score_quantities, score_relations


def rel(name, a, b, truth, pred, stamp=1.0, ambiguous=False, success=True, confidence=0.9):
    return QueryRecord(stamp, "relation", a, name, b, truth=truth, predicted=pred if success else None,
                       success=success, ambiguous=ambiguous, confidence=confidence if success else None,
                       subject_id=a, reference_id=b)


def four_ways(truth_left, answers, **kw):
    """left_of(A,B), right_of(B,A), left_of(B,A), right_of(A,B) with the truth of 'A left of B'."""
    t = truth_left
    askings = [("left_of", "A", "B", t), ("right_of", "B", "A", t), ("left_of", "B", "A", not t),
               ("right_of", "A", "B", not t)]
    return [rel(n, a, b, truth, ans, **kw) for (n, a, b, truth), ans in zip(askings, answers)]


def test_every_core_relation_has_one_symmetry_class():
    classes = [ANTISYMMETRIC, SYMMETRIC, ORDERED]
    for name in R.RELATIONS:
        assert sum(name in c for c in classes) == 1, name
    assert set().union(*classes) == set(R.RELATIONS)


def _obj(oid, center, size):
    c = np.asarray(center, float)
    g = GravityFrame.camera_default()
    cg = g.to_gravity(c)
    size = np.asarray(size, float)
    pts = c + (np.random.default_rng(abs(hash(oid)) % 2**32).uniform(-0.5, 0.5, (200, 3)) * size)
    return TrackedObject(oid, oid, 1.0, c, size, cg - size / 2, cg + size / 2, pts, n_pixels=500)


def test_symmetry_classes_match_the_core_definitions():
    rng = np.random.default_rng(0)
    scene = Scene(gravity=GravityFrame.camera_default())
    for _ in range(30):
        a = _obj("a", rng.uniform([-0.4, -0.2, 0.6], [0.4, 0.2, 1.5]), rng.uniform(0.03, 0.25, 3))
        b = _obj("b", rng.uniform([-0.4, -0.2, 0.6], [0.4, 0.2, 1.5]), rng.uniform(0.03, 0.25, 3))
        for name in R.RELATIONS:
            ab, ba = R.evaluate(name, a, b, scene), R.evaluate(name, b, a, scene)
            if name in ANTISYMMETRIC and abs(ab.margin_m) > 1e-9:
                assert ab.holds != ba.holds, name
            if name in SYMMETRIC:
                assert ab.holds == ba.holds, name
            spec = R.RELATIONS[name]
            if spec.inverse:                       # R(a, b) == inverse(b, a), the merge of canonical_asking
                assert ab.holds == R.evaluate(spec.inverse, b, a, scene).holds, name


def test_four_askings_of_left_right_are_one_fact():
    keys = {fact_key(r)[0] for r in four_ways(True, [True, True, False, False])}
    assert len(keys) == 1
    assert canonical_asking("right_of", "B", "A") == ("left_of", "A", "B")
    assert canonical_asking("on_top_of", "A", "B") == ("on_top_of", "A", "B")
    s = score_relations(four_ways(True, [True, True, False, False]))
    left = s["per_relation"]["left_of"]
    assert list(s["per_relation"]) == ["left_of"]
    assert left["n"] == 1 and left["n_askings"] == 4 and left["n_scored"] == 1 and left["accuracy"] == 1.0
    assert left["confusion"]["true_yes"] == 1         # canonical statement: left_of(A, B) holds, said yes


def test_one_wrong_asking_makes_the_fact_wrong_once():
    # right_of(A, B) answered yes: contradicts the other three -> one wrong fact, not one in four
    s = score_relations(four_ways(True, [True, True, False, True]))["overall"]
    assert s["n_scored"] == 1 and s["correct"] == 0 and s["accuracy"] == 0.0
    assert s["confusion"]["inconsistent"] == 1
    # consistently wrong: a false 'no'
    s = score_relations(four_ways(True, [False, False, True, True]))["overall"]
    assert s["confusion"]["false_no"] == 1 and s["confusion"]["inconsistent"] == 0
    # one asking failed: the fact failed
    recs = four_ways(True, [True, True, False, False])
    recs[2] = rel("left_of", "B", "A", False, None, success=False)
    s = score_relations(recs)["overall"]
    assert s["n_failed"] == 1 and s["correct"] == 0


def test_facts_are_per_frame_and_ordered_relations_keep_direction():
    recs = four_ways(True, [True] * 2 + [False] * 2) + four_ways(True, [True] * 2 + [False] * 2, stamp=2.0)
    recs += [rel("above", "A", "B", False, False), rel("above", "B", "A", False, False),
             rel("below", "A", "B", False, False)]                       # below(A, B) == above(B, A)
    recs += [rel("next_to", "A", "B", True, True), rel("next_to", "B", "A", True, True)]
    per = score_relations(recs)["per_relation"]
    assert per["left_of"]["n"] == 2                                     # two frames
    assert per["above"]["n"] == 2 and per["above"]["n_askings"] == 3
    assert per["next_to"]["n"] == 1


def test_ambiguous_asking_makes_the_fact_ambiguous():
    recs = [rel("left_of", "A", "B", True, True), rel("left_of", "B", "A", False, False, ambiguous=True)]
    s = score_relations(recs)["overall"]
    assert s["n_scored"] == 0 and s["n_ambiguous"] == 1


def test_symmetric_quantities_scored_once_with_the_worse_answer():
    assert all(spec.binary == (name in ("distance", "gap", "horizontal_distance", "vertical_distance"))
               for name, spec in QUANTITIES.items())
    recs = [QueryRecord(1.0, "quantity", "A", "distance", "B", truth=1.0, predicted=1.05, success=True,
                        uncertainty=0.03, subject_id="A", reference_id="B"),
            QueryRecord(1.0, "quantity", "B", "distance", "A", truth=1.0, predicted=1.2, success=True,
                        uncertainty=0.2, subject_id="B", reference_id="A"),
            QueryRecord(1.0, "quantity", "A", "height", "", truth=0.1, predicted=0.1, success=True),
            QueryRecord(1.0, "quantity", "B", "height", "", truth=0.2, predicted=0.2, success=True)]
    facts = merge_facts(recs)
    assert len(facts) == 3
    d = score_quantities(recs)["per_quantity"]["distance"]
    assert d["n"] == 1 and d["n_askings"] == 2
    assert d["within_10pct"] == 0.0 and d["abs_error_m"]["max"] == pytest.approx(0.2)
    assert d["coverage_2sigma"]["n"] == 1 and d["coverage_2sigma"]["covered"] == 1   # 0.2 <= 2 * 0.2
    assert score_quantities(recs)["per_quantity"]["height"]["n"] == 2


def test_every_unordered_pair_of_all_relations_gives_one_key_per_fact():
    ids = ["A", "B", "C"]
    recs = [rel(n, a, b, True, True) for n in R.RELATIONS for a, b in itertools.permutations(ids, 2)]
    keys = {fact_key(r)[0] for r in recs}
    n_pairs = 3
    # antisymmetric bases (left_of, in_front_of, ...) and next_to: one fact per unordered pair;
    # above (below merged into it) and on_top_of: one per ordered pair
    n_anti_bases = len([n for n in ANTISYMMETRIC if canonical_asking(n, "x", "y")[0] == n])
    assert n_anti_bases == 7
    assert len(keys) == (n_anti_bases + 1) * n_pairs + 2 * (2 * n_pairs)

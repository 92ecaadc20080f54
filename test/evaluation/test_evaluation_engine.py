"""``evaluate --engine vlm``: each ground-truth question as its template question through ~/ask, answered by a
VLM node the runner starts (a tiny random LLaVA: its answers are meaningless, the test checks the plumbing),
scored by the same scorer. The ROS-free parts (question phrasing, record filling, config checks) first.

ROS test: run through ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q test/evaluation``.
"""
import json
from types import SimpleNamespace

import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.quantities import QUANTITIES
from spatial_vlm_ros.core.questions import parse
from spatial_vlm_ros.core.relations import RELATIONS
from spatial_vlm_ros.evaluation.asking import fill_vlm_answer, template_question
from spatial_vlm_ros.evaluation.config import EvaluationConfig
from spatial_vlm_ros.evaluation.facts import merge_facts
from spatial_vlm_ros.evaluation.node_process import node_parameter_overrides, vlm_parameter_overrides
from spatial_vlm_ros.evaluation.records import QUANTITY, RELATION, QueryRecord
from spatial_vlm_ros.evaluation.runner import run_evaluation


@pytest.mark.parametrize("relation", sorted(RELATIONS))
def test_every_relation_is_asked_as_a_template_question_that_parses_back(relation):
    query = parse(template_question(QueryRecord(0.0, RELATION, "red mug", relation, "bowl_2")))
    assert (query.kind, query.relation, query.subject, query.reference) == ("relation", relation, "red mug",
                                                                            "bowl_2")


@pytest.mark.parametrize("quantity", sorted(QUANTITIES))
def test_every_quantity_is_asked_as_a_template_question_that_parses_back(quantity):
    reference = "bowl_2" if QUANTITIES[quantity].binary else ""
    query = parse(template_question(QueryRecord(0.0, QUANTITY, "red mug", quantity, reference)))
    assert (query.kind, query.quantity, query.relation) == ("quantity", quantity, "")
    assert (query.subject, query.reference) == ("red mug", reference)


def _ask_response(**fields):
    base = dict(success=True, message="answered by tiny", answer="", yes=False, value=0.0, vlm_parsed=True)
    return SimpleNamespace(**{**base, **fields})


def test_vlm_answers_fill_records_and_an_unread_answer_counts_as_unanswered():
    rel = QueryRecord(0.0, RELATION, "mug", "left_of", "bowl", truth=True)
    fill_vlm_answer(rel, _ask_response(answer="No.", yes=False), 12.5)
    assert rel.answered and rel.predicted is False and rel.latency_ms == 12.5 and rel.confidence is None
    dist = QueryRecord(0.0, QUANTITY, "mug", "distance", "bowl", truth=0.3)
    fill_vlm_answer(dist, _ask_response(answer="About 30 cm.", value=0.3), 1.0)
    assert dist.answered and dist.predicted == 0.3 and dist.uncertainty is None
    unread = QueryRecord(0.0, QUANTITY, "mug", "distance", "bowl", truth=0.3)
    fill_vlm_answer(unread, _ask_response(answer="qq#", vlm_parsed=False), 1.0)
    assert unread.success and not unread.answered and unread.answer == "qq#"
    timed_out = QueryRecord(0.0, RELATION, "mug", "left_of", "bowl", truth=True)
    fill_vlm_answer(timed_out, None, 130e3)
    assert not timed_out.success and "timed out" in timed_out.message


def test_engine_vlm_points_the_perception_node_at_the_vlm_node_it_starts():
    cfg = EvaluationConfig(engine="vlm", vlm_model="some/model", namespace="robot1", vlm_timeout_s=30.0,
                           vlm_parameters={"backend": "onnx"})
    overrides = node_parameter_overrides(cfg)
    assert overrides["vlm_service"] == "/robot1/spatial_vlm/ask" and overrides["vlm_timeout_s"] > 30.0
    assert vlm_parameter_overrides(cfg) == {"model": "some/model", "request_timeout_s": 30.0, "backend": "onnx"}
    assert "vlm_service" not in node_parameter_overrides(EvaluationConfig())


@pytest.mark.parametrize("cfg, message", [(EvaluationConfig(engine="vlm"), "needs a model"),
                                          (EvaluationConfig(engine="oracle"), "unknown engine 'oracle'")])
def test_bad_engine_settings_are_refused_before_anything_starts(cfg, message, tmp_path):
    with pytest.raises(InputError, match=message):
        run_evaluation(tmp_path / "no_bag", cfg=cfg, out_dir=tmp_path)


# ------------------------------------------------------------------------------ through the real nodes
@pytest.fixture(scope="module")
def tiny_bag(tmp_path_factory):
    pytest.importorskip("spatial_vlm_interfaces.msg", reason="run under scripts/ros_env.sh (needs install/)")
    from spatial_vlm_ros.bag.writer import write_bag
    from spatial_vlm_ros.sim.dataset import GeneratorConfig, iter_scenes
    from spatial_vlm_ros.sim.scene_sampler import SamplerConfig

    cfg = GeneratorConfig(width=160, height=120, frames_per_scene=1,       # 3 objects: few questions to the VLM
                          sampler=SamplerConfig(min_objects=3, max_objects=3))
    return write_bag(list(iter_scenes(1, seed=0, cfg=cfg)), tmp_path_factory.mktemp("bags") / "tiny")


def test_evaluate_with_the_vlm_engine_scores_the_vlms_answers(tiny_bag, tmp_path):
    pytest.importorskip("transformers")
    from spatial_vlm_ros.evaluation.runner import evaluate
    from spatial_vlm_ros.vlm.tiny_models import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny_llava", "llava", seed=0)
    summary = evaluate(tiny_bag, None, tmp_path / "out", detector="external", progress=False, baseline=False,
                       engine="vlm", vlm_model=str(model), vlm_timeout_s=60.0,
                       vlm_parameters={"max_new_tokens": 6}, relations={"left_of"}, quantities={"distance"})
    assert summary["engine"] == "vlm"
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["meta"]["engine"] == "vlm" and results["meta"]["vlm_model"] == str(model)
    records = results["runs"]["external (vlm)"]["records"]
    assert {r["relation_or_quantity"] for r in records} == {"left_of", "distance"}
    asked = [r for r in records if not r["missed"]]
    assert asked and all(r["success"] for r in asked), [r["message"] for r in asked if not r["success"]]
    assert all(r["message"].startswith("answered by") for r in asked)     # by the VLM, never the geometry
    assert all(r["confidence"] is None and r["uncertainty"] is None for r in asked)
    # scored by the same scorer: a relation fact with an unread (or missed) answer is a failure
    facts = merge_facts(QueryRecord.from_dict(r) for r in records if r["kind"] == RELATION)
    scored = [f for f in facts if not f.ambiguous and f.truth is not None]
    assert summary["relations"]["overall"]["n_failed"] == sum(not f.answered for f in scored)
    assert summary["relations"]["overall"]["n"] == len(facts) > 0
    assert "external (vlm)" in (tmp_path / "out" / "report.md").read_text()

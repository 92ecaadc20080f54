"""The compact spatial VLM: preset and model size, training steps on a fixed batch, save/load, resume, the
evaluator end to end on 2 sets, bad arguments. A tiny variant of the preset and a small dataset in the
issue-11 schema built here (What's-Up frames of the analytic renderer); a tiny model's numbers are not
accuracy, so the evaluator test checks the format and the counting only."""
import dataclasses
import json
import re

import numpy as np
import pytest
from compact_fixtures import TINY_MODEL  # sets the offline environment before transformers loads

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

from spatial_vlm_ros.core.errors import InputError  # noqa: E402
from spatial_vlm_ros.training import compact, evaluate_vlm, train_compact  # noqa: E402

TINY_TRAIN = dict(batch_size=8, lr=3e-3, warmup_steps=2, epochs=1, log_every=2, eval_every=4, eval_rows=8,
                  generate_rows=2, checkpoint_every=3)


def _rows(seed: int, n_sets: int = 2, width: int = 48, height: int = 36):
    """Rows in the contract's schema from controlled frames: a describe and a distance question each."""
    from spatial_vlm_ros.synthesis.units import human_length

    frames = evaluate_vlm.controlled_frames(n_sets, seed, width, height)
    cols = {k: [] for k in ("sample_id", "image", "question", "answer", "kind", "template", "relation",
                            "quantity", "value_m", "source", "frame_index", "seed")}
    for i, f in enumerate(frames):
        ex = f.example
        for kind, q, a, value in (
                ("describe", evaluate_vlm.describe_prompt(f.subject, f.reference), ex.captions[ex.correct],
                 float("nan")),
                ("metric", evaluate_vlm.distance_question(f.subject, f.reference),
                 human_length(f.true_distance_m), f.true_distance_m)):
            cols["sample_id"].append(f"{seed}-{i}-{kind}")
            cols["image"].append(ex.image)
            cols["question"].append(q)
            cols["answer"].append(a)
            cols["kind"].append(kind)
            cols["template"].append(f"{kind}/0")
            cols["relation"].append(ex.preposition if kind == "describe" else "")
            cols["quantity"].append("distance" if kind == "metric" else "")
            cols["value_m"].append(value)
            cols["source"].append(f"sim:analytic:seed={seed}")
            cols["frame_index"].append(i)
            cols["seed"].append(seed)
    features = datasets.Features({**{k: datasets.Value("string") for k in cols},
                                  "image": datasets.Image(), "value_m": datasets.Value("float64"),
                                  "frame_index": datasets.Value("int64"), "seed": datasets.Value("int64")})
    return datasets.Dataset.from_dict(cols, features=features)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("compact_data")
    _rows(0).save_to_disk(str(d / "train"))       # 16 frames -> 32 rows
    _rows(1, n_sets=1).save_to_disk(str(d / "eval"))
    return d


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    import yaml

    path = tmp_path_factory.mktemp("preset") / "compact-tiny.yaml"
    path.write_text(yaml.safe_dump({"model": TINY_MODEL, "train": TINY_TRAIN,
                                    "data": {"width": 48, "height": 36, "min_rows": 10, "scenes": 4,
                                             "eval_scenes": 2}}))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_preset, data_dir):
    out = tmp_path_factory.mktemp("compact_run") / "model"
    assert train_compact.main(["--preset", str(tiny_preset), "--out", str(out), "--data", str(data_dir),
                               "--max-steps", "6", "--seed", "3"]) == 0
    return out


def test_shipped_preset_builds_the_documented_size():
    preset = train_compact.load_preset("compact-cpu")
    tok = compact.train_tokenizer(["The red box is to the left of the blue cylinder.", "23 centimeters"] * 3,
                                  preset.model.vocab_size)
    model, processor = compact.build_compact(preset.model, tok)
    n = compact.count_parameters(model)
    assert 1e6 < n["total"] < 5e6                              # "a few million" (docs/compact_vlm.md)
    assert n["vision"] + n["projector"] + n["language"] == n["total"]
    assert preset.model.image_tokens == 64
    # one image becomes image_tokens placeholders in the prompt
    ids = processor(text=["<image>x"], images=[np.zeros((72, 96, 3), np.uint8)], return_tensors="pt")["input_ids"]
    assert int((ids == model.config.image_token_id).sum()) == 64


def test_vision_positions_start_from_a_sincos_table_and_reach_the_decoder():
    cfg = compact.CompactConfig(**TINY_MODEL)
    tok = compact.train_tokenizer(["The red box is to the left of the blue cylinder."] * 3, cfg.vocab_size)
    model, processor = compact.build_compact(cfg, tok, seed=0)
    grid = cfg.image_size // cfg.patch_size
    table = model.model.vision_tower.embeddings.position_embedding.weight.detach()
    assert torch.allclose(table[1:], 0.3 * compact.sincos_2d(grid, cfg.vision_hidden))
    assert float(table[0].abs().max()) == 0.0
    assert len({tuple(r.tolist()) for r in table[1:]}) == grid * grid      # every patch position distinct
    random_cfg = compact.CompactConfig(**{**TINY_MODEL, "position_init": "random"})
    other, _ = compact.build_compact(random_cfg, tok, seed=0)
    assert float(other.model.vision_tower.embeddings.position_embedding.weight.std()) < 0.1
    with pytest.raises(InputError):
        compact.CompactConfig(**{**TINY_MODEL, "position_init": "learned"}).validate()
    # two different images give different logits (the image reaches the decoder)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (24, 32, 3), dtype=np.uint8) for _ in range(2)]
    inputs = processor(text=["<image>Where is the red box?"] * 2, images=images, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert float((logits[0] - logits[1]).abs().max()) > 1e-4


def test_vision_lr_scale_sets_the_vision_and_projector_groups(data_dir, tiny_preset):
    from spatial_vlm_ros.training.vqa_data import load_vqa_datasets

    preset = train_compact.load_preset(str(tiny_preset))
    bad = dataclasses.replace(preset.train, vision_lr_scale=0.0)
    with pytest.raises(InputError):
        train_compact.validate_train(bad)
    scaled = dataclasses.replace(preset, train=dataclasses.replace(preset.train, vision_lr_scale=4.0))
    run = train_compact._build_run(scaled, 0, 10, load_vqa_datasets(data_dir / "train"), None)
    vision = {id(p) for p in run.model.model.vision_tower.parameters()} | {
        id(p) for p in run.model.model.multi_modal_projector.parameters()}
    for group in run.optimizer.param_groups:
        is_vision = {id(p) in vision for p in group["params"]}
        assert len(is_vision) == 1
        want = preset.train.lr * (4.0 if is_vision.pop() else 1.0)
        assert group["initial_lr"] == pytest.approx(want)


def test_tokenizer_round_trips_and_splits_digits():
    tok = compact.train_tokenizer(["How far apart are the red box and the blue cylinder?", "23 centimeters",
                                   "1.2 meters"] * 4, 300)
    text = "The purple cylinder is 47 centimeters from the camera."
    assert tok.decode(tok(text)["input_ids"]) == text                    # bytes fall back: anything encodes
    pieces = tok.tokenize(" 1234")
    assert [p for p in pieces if p.isdigit()] == ["1", "2", "3", "4"]
    assert len(tok.tokenize(" centimeters")) < len(" centimeters")       # merges learned from the text


def test_few_steps_on_a_fixed_batch_lower_the_loss(data_dir):
    from spatial_vlm_ros.training.vqa_data import VQACollator, load_vqa_datasets

    ds = load_vqa_datasets(data_dir / "train")
    cfg = compact.CompactConfig(**TINY_MODEL)
    tok = compact.train_tokenizer(list(ds["question"]) + list(ds["answer"]), cfg.vocab_size)
    model, processor = compact.build_compact(cfg, tok, seed=0)
    batch = VQACollator(processor)(train_compact.rows_of(ds, range(8)))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses


def test_training_run_saves_a_loadable_model_and_logs(trained):
    from spatial_vlm_ros.vlm.engine import VLMRequest
    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    for f in ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json", "training.json"):
        assert (trained / f).is_file(), f
    info = json.loads((trained / "training.json").read_text())
    assert info["steps"] == 6 and info["complete"] and info["seed"] == 3
    assert info["train_seeds"] == [3] and info["eval_seeds"] == [4]
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["type"] == "train"] == [2, 4, 6]
    evals = [r for r in log if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [4, 6]
    assert set(evals[-1]["exact_match"]) == {"describe", "metric"} and evals[-1]["n"]["describe"] == 2
    engine = TransformersEngine(str(trained))
    model, _ = compact.load_compact(trained)
    sd, ref = engine.model.state_dict(), model.state_dict()
    assert all(torch.equal(sd[k], ref[k]) for k in ref)
    answer = engine.answer(VLMRequest("Where is the red box relative to the blue cylinder?",
                                      np.zeros((36, 48, 3), np.uint8)))
    assert answer.prompt_tokens > 16


def test_resume_matches_an_uninterrupted_run(tmp_path, tiny_preset, data_dir, trained):
    out = tmp_path / "model"
    args = ["--preset", str(tiny_preset), "--out", str(out), "--data", str(data_dir), "--seed", "3"]
    # a crash at step 4 of 6 (the last checkpoint is step 3's), then --resume
    preset = train_compact.load_preset(str(tiny_preset))
    with pytest.raises(_Stop):
        train_compact.train(preset, out, seed=3, data_dir=data_dir, max_steps=6, log=_stop_after(4))
    assert (out / "checkpoint" / "state.pt").is_file()
    assert train_compact.main(args + ["--max-steps", "6"]) == 2                     # needs --resume
    assert train_compact.main(args + ["--max-steps", "6", "--resume"]) == 0
    a, _ = compact.load_compact(out)
    b, _ = compact.load_compact(trained)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4, msg=name)


class _Stop(Exception):
    pass


def _stop_after(step: int):
    """A log callback that interrupts training when ``step`` is logged (a crash)."""
    def log(message: str) -> None:
        if message.startswith(f"step {step}/"):
            raise _Stop()
    return log


def test_time_budget_stops_cleanly_and_saves(tmp_path, tiny_preset, data_dir):
    out = tmp_path / "model"
    preset = train_compact.load_preset(str(tiny_preset))
    info = train_compact.train(preset, out, seed=0, data_dir=data_dir, minutes=1e-6, max_steps=50, log=lambda m: None)
    assert info["steps"] == 1 and not info["complete"] and info["stopped_by"].startswith("time budget")
    assert (out / "model.safetensors").is_file() and (out / "checkpoint" / "state.pt").is_file()


def test_evaluator_runs_end_to_end_and_prints_the_final_line(trained, tmp_path, capsys):
    report = tmp_path / "report"
    assert evaluate_vlm.main(["--model", str(trained), "--seed", "11", "--sets", "2", "--report", str(report)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"whatsup: accuracy \d\.\d{3} pair \d\.\d{3} set \d\.\d{3}; "
                        r"metric \[0\.5x,2x\] \d\.\d{3} ±25% \d\.\d{3}", lines[-1]), lines[-1]
    results = json.loads((report / "results.json").read_text())
    names = [r["system"] for r in results["rows"]]
    assert names[:3] == ["trained", "geometric engine", "untrained (random init)"] and len(names) == 6
    for r in results["rows"]:
        assert r["n_examples"] == 16 and r["metric_n"] == 16          # 2 sets x 2 kinds x 4 frames
        for key in ("accuracy", "pair_accuracy", "set_accuracy", "metric_within_2x", "metric_within_25"):
            assert 0.0 <= r[key] <= 1.0
        assert r["metric_within_25"] <= r["metric_within_2x"]
    # the trained row's numbers are those of the final line
    t = results["rows"][0]
    assert lines[-1].startswith(f"whatsup: accuracy {t['accuracy']:.3f} pair {t['pair_accuracy']:.3f}")
    for f in ("report.md", "learning_curves.png", "per_relation_accuracy.png", "distance_error.png"):
        assert (report / f).stat().st_size > 0


def test_geometric_engine_reads_the_controlled_frames():
    """The geometric baseline on well-separated analytic frames: real lifting, so it must get most right
    and measure distances near the truth (a scorer that ignored the geometry would sit near chance)."""
    frames = evaluate_vlm.controlled_frames(2, seed=21, width=160, height=120)
    row = evaluate_vlm.evaluate_geometry(frames)
    assert row.whatsup.n_examples == 16
    assert row.whatsup.accuracy >= 0.75
    assert row.metric.within_2x >= 0.75


def test_bad_arguments_give_one_line_errors(trained, tmp_path, capsys, tiny_preset):
    cases = [
        (train_compact.main, ["--preset", "no-such-preset", "--out", str(tmp_path / "a")], "unknown preset"),
        (train_compact.main, ["--preset", str(tiny_preset), "--out", str(tmp_path / "b"), "--resume",
                              "--data", str(tmp_path)], "nothing to resume"),
        (train_compact.main, ["--preset", str(tiny_preset), "--out", str(tmp_path / "c"), "--minutes", "-1",
                              "--data", str(tmp_path)], "must be >= 0"),
        (evaluate_vlm.main, ["--model", str(tmp_path / "none"), "--seed", "5"], "not a model directory"),
        (evaluate_vlm.main, ["--model", str(trained), "--seed", "3"], "was used to train"),
        (evaluate_vlm.main, ["--model", str(trained), "--seed", "9", "--sets", "0"], "at least 1"),
    ]
    for fn, argv, message in cases:
        capsys.readouterr()
        assert fn(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("spatial_vlm ") and message in err, err
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {hidden: 64, color: 3}\n")
    with pytest.raises(InputError, match="unknown compact model keys"):
        train_compact.load_preset(str(bad))
    bad.write_text("train: {lr: -1}\n")
    with pytest.raises(InputError, match="lr must be a positive"):
        train_compact.load_preset(str(bad))

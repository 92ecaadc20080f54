"""LoRA fine-tuning on tiny random VLMs (LLaVA, Qwen2-VL) and a tiny dataset in the issue-11 schema.

The models' weights are random: the losses and exact-match figures here say nothing about accuracy; the
tests check the mechanics (labels, loss decrease on a fixed batch, checkpoint/resume, merge equivalence,
config errors)."""
import io
import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")
pytest.importorskip("peft")

from spatial_vlm_ros.core.errors import InputError  # noqa: E402
from spatial_vlm_ros.training import lora  # noqa: E402
from spatial_vlm_ros.training.lora_config import AdapterConfig, config_from_dict, load_config  # noqa: E402
from spatial_vlm_ros.training.vqa_data import (  # noqa: E402
    IGNORE_INDEX,
    VQACollator,
    load_vqa_datasets,
    split_by_column,
    split_by_hash,
)

ANSWERS = ["Yes.", "No.", "23 centimeters", "1.2 meters"]
KINDS = ["yes_no", "yes_no", "metric", "metric"]


def _png(rng) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def schema_rows(n: int, seed: int = 0) -> dict:
    """``n`` rows with every column of the issue-11 schema (random images, template-like text)."""
    rng = np.random.default_rng(seed)
    nan = float("nan")
    return {
        "sample_id": [f"{seed}-{i:04d}" for i in range(n)],
        "image": [{"bytes": _png(rng), "path": None} for _ in range(n)],
        "question": [f"Is the red box left of the blue cylinder {i}?" for i in range(n)],
        "answer": [ANSWERS[i % 4] for i in range(n)],
        "kind": [KINDS[i % 4] for i in range(n)],
        "template": [f"relation_yes_no/left_of/{i % 3}" for i in range(n)],
        "relation": ["left_of"] * n, "quantity": [""] * n,
        "value_m": [nan] * n, "sigma_m": [nan] * n, "margin_m": [0.1] * n, "confidence": [0.9] * n,
        "objects": [["box_1", "cylinder_2"]] * n, "labels": [["red box", "blue cylinder"]] * n,
        "source": [f"sim:analytic:seed={i % 3}" for i in range(n)],
        "frame_index": list(range(n)), "stamp_ns": [1000 * i for i in range(n)], "seed": [seed] * n,
        "truth_answer": [ANSWERS[i % 4] for i in range(n)],
    }


FEATURES = datasets.Features({
    "sample_id": datasets.Value("string"), "image": datasets.Image(), "question": datasets.Value("string"),
    "answer": datasets.Value("string"), "kind": datasets.Value("string"), "template": datasets.Value("string"),
    "relation": datasets.Value("string"), "quantity": datasets.Value("string"),
    "value_m": datasets.Value("float64"), "sigma_m": datasets.Value("float64"),
    "margin_m": datasets.Value("float64"), "confidence": datasets.Value("float64"),
    "objects": datasets.Sequence(datasets.Value("string")), "labels": datasets.Sequence(datasets.Value("string")),
    "source": datasets.Value("string"), "frame_index": datasets.Value("int64"),
    "stamp_ns": datasets.Value("int64"), "seed": datasets.Value("int64"), "truth_answer": datasets.Value("string"),
})


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from intra-op threads; one thread keeps these tests cheap on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("vqa") / "data"
    datasets.Dataset.from_dict(schema_rows(12), features=FEATURES).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    from spatial_vlm_ros.vlm.tiny_models import save_tiny_model

    root = tmp_path_factory.mktemp("models")
    return {family: save_tiny_model(root / family, family, seed=0) for family in ("llava", "qwen2_vl")}


def run_config(model_dir, data_dir, out, **train) -> dict:
    return {"model": str(model_dir), "output_dir": str(out),
            "data": {"train": [str(data_dir)], "eval_fraction": 0.25},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.1},
            "train": {"lr": 5e-3, "max_steps": 4, "batch_size": 1, "grad_accum": 2, "warmup_steps": 1,
                      "eval_every": 0, "save_every": 0, "log_every": 1, "eval_generate_rows": 2,
                      "max_new_tokens": 3, "seed": 3, **train}}


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_labels_cover_only_the_answer_and_prompt_matches_inference(family, model_dirs, data_dir):
    from spatial_vlm_ros.vlm.engine import load_processor

    processor = load_processor(str(model_dirs[family]))
    collator = VQACollator(processor)
    ds = load_vqa_datasets(data_dir)
    rows = [ds[i] for i in range(3)]
    batch = collator(rows)
    tok = collator.tokenizer
    for i, row in enumerate(rows):
        labels, ids = batch["labels"][i], batch["input_ids"][i]
        kept = labels != IGNORE_INDEX
        assert tok.decode(labels[kept]) == row["answer"] + "<|im_end|>"
        assert torch.equal(labels[kept], ids[kept])
        first = int(kept.nonzero()[0])
        assert kept[first:first + int(kept.sum())].all()          # one contiguous answer span
        # the prompt part is tokenised exactly as an engine tokenises the question at inference time
        alone = collator.prompt_batch([row])["input_ids"][0]
        assert first == len(alone) and torch.equal(ids[:first], alone)
        n = int(batch["attention_mask"][i].sum())
        assert (labels[n:] == IGNORE_INDEX).all() and (batch["attention_mask"][i, :n] == 1).all()


@pytest.mark.parametrize("family", ["llava", "qwen2_vl"])
def test_loss_decreases_and_merge_matches_adapter(family, model_dirs, data_dir, tmp_path):
    from peft import PeftModel

    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    torch.manual_seed(0)
    base, processor = lora.load_base_model(str(model_dirs[family]))
    model = lora.build_peft_model(base, AdapterConfig(r=4, alpha=8, dropout=0.0))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert not any(("vision_tower" in n or "visual" in n) for n in trainable)       # vision tower frozen
    collator = VQACollator(processor)
    batch = collator([load_vqa_datasets(data_dir)[i] for i in range(2)])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for _ in range(5):
        loss, n = lora.token_loss_sum(model, batch)
        (loss / n).backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item() / n)
    assert losses[-1] < 0.8 * losses[0], losses

    adapter = tmp_path / "adapter"
    model.save_pretrained(adapter, safe_serialization=True)
    lora._set_adapter_base(adapter, str(model_dirs[family]))
    merged_dir = lora.merge_adapter(adapter, tmp_path / "merged")
    engine = TransformersEngine(str(merged_dir))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    fresh, _ = lora.load_base_model(str(model_dirs[family]))
    with torch.inference_mode():
        base_logits = fresh(**inputs).logits
        adapted = PeftModel.from_pretrained(fresh, str(adapter)).eval()(**inputs).logits
        merged = engine.model(**inputs).logits
    torch.testing.assert_close(merged, adapted, atol=2e-4, rtol=1e-4)
    assert (adapted - base_logits).abs().max() > 1e-2                 # the adapter does change the model


def test_train_resume_matches_an_uninterrupted_run(model_dirs, data_dir, tmp_path, capsys):
    import yaml

    straight = config_from_dict(run_config(model_dirs["llava"], data_dir, tmp_path / "a"))
    result = lora.train(straight)
    assert result.step == 4 and result.adapter_dir is not None
    records = lora.read_log(tmp_path / "a")
    evals = [r for r in records if r["event"] == "eval"]
    assert len(evals) == 1 and np.isfinite(evals[0]["eval_loss"]) and evals[0]["eval_rows"] >= 1
    assert 0.0 <= evals[0]["exact_match"] <= 1.0 and evals[0]["generated_rows"] >= 1
    assert [r["step"] for r in records if r["event"] == "train"] == [1, 2, 3, 4]

    config_file = tmp_path / "b.yaml"
    config_file.write_text(yaml.safe_dump(run_config(model_dirs["llava"], data_dir, tmp_path / "b")))
    assert lora.main(["--config", str(config_file), "--stop-after", "2"]) == 0
    assert "continue with --resume" in capsys.readouterr().out
    assert [p.name for p in lora.checkpoint_dirs(tmp_path / "b")] == ["step-00000002"]
    assert not (tmp_path / "b" / "adapter").exists()
    assert lora.main(["--config", str(config_file)]) == 2                     # would overwrite: refused
    assert "--resume" in capsys.readouterr().err
    assert lora.main(["--config", str(config_file), "--resume"]) == 0

    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "a" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "b" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and a
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-6, rtol=1e-5)
    train_a = {r["step"]: r["loss"] for r in records if r["event"] == "train"}
    log_b = lora.read_log(tmp_path / "b")
    assert [r["step"] for r in log_b if r["event"] == "train"] == [1, 2, 3, 4]
    assert [r["event"] for r in log_b].count("resume") == 1
    train_b = {r["step"]: r["loss"] for r in log_b if r["event"] == "train"}
    np.testing.assert_allclose([train_b[s] for s in range(1, 5)], [train_a[s] for s in range(1, 5)], rtol=1e-5)
    assert train_a[4] != train_a[1]

    # a crash after step 4's log records but before its checkpoint: resuming from step 2 logs 3 and 4 once
    import shutil

    shutil.rmtree(tmp_path / "b" / "checkpoints" / "step-00000004")
    assert lora.main(["--config", str(config_file), "--resume"]) == 0
    log_b = lora.read_log(tmp_path / "b")
    assert [r["step"] for r in log_b if r["event"] == "train"] == [1, 2, 3, 4]
    again = load_file(str(tmp_path / "b" / "adapter" / "adapter_model.safetensors"))
    for key in a:
        torch.testing.assert_close(again[key], a[key], atol=1e-6, rtol=1e-5)

    changed = run_config(model_dirs["llava"], data_dir, tmp_path / "b")
    changed["lora"]["r"] = 8
    with pytest.raises(InputError, match="different lora"):
        lora.train(config_from_dict(changed), resume=True)


def test_splits_are_stable_and_disjoint(data_dir):
    ds = load_vqa_datasets([data_dir, data_dir])
    assert len(ds) == 24
    train, evaluation = split_by_hash(ds, 0.3, seed=1)
    assert len(train) + len(evaluation) == 24 and len(evaluation) > 0
    assert not set(train["sample_id"]) & set(evaluation["sample_id"])
    again = split_by_hash(ds.shuffle(seed=5), 0.3, seed=1)[1]
    assert sorted(again["sample_id"]) == sorted(evaluation["sample_id"])
    train, evaluation = split_by_column(ds, "source", ["sim:analytic:seed=0"])
    assert set(evaluation["source"]) == {"sim:analytic:seed=0"} and "sim:analytic:seed=0" not in train["source"]


def test_bad_configs_and_data_are_refused(model_dirs, data_dir, tmp_path, capsys):
    good = run_config(model_dirs["llava"], data_dir, tmp_path / "run")
    config_from_dict(good)

    def bad(message, **patch):
        values = json.loads(json.dumps(good))
        for key, value in patch.items():
            section, _, name = key.rpartition("__")
            (values[section] if section else values)[name] = value
        with pytest.raises(InputError, match=message):
            config_from_dict(values)

    bad("unknown key.*'train'.*learning_rate", train__learning_rate=1e-3)
    bad("unknown key.*LoRA config: optimiser", optimiser="adam")
    bad("train.lr must be > 0", train__lr=-1e-4)
    bad("lora.r must be >= 1", lora__r=0)
    bad("train.batch_size must be an integer", train__batch_size="four")
    bad("dataset directory .*missing does not exist", data__train=[str(tmp_path / "missing")])
    bad("train.device must be", train__device="tpu")
    bad("no training data", data__train=[])

    config_file = tmp_path / "lora.yaml"
    config_file.write_text("model: m\noutput_dir: out\ndata: {train: [d]}\ntrain: {lr: 2e-4, epochs: 1}\n")
    with pytest.raises(InputError, match=r"dataset directory .*d does not exist"):
        load_config(config_file)
    assert lora.main(["--config", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert lora.main(["--config", str(config_file), "--resume"]) == 2

    no_answer = tmp_path / "no_answer"
    datasets.Dataset.from_dict({"image": [None], "question": ["q"]}).save_to_disk(str(no_answer))
    with pytest.raises(InputError, match="lacks the column.*answer"):
        load_vqa_datasets(no_answer)
    with pytest.raises(InputError, match="no checkpoint"):
        lora.train(config_from_dict(good), resume=True)
    with pytest.raises(InputError, match="no language-model linear layer"):
        base, _ = lora.load_base_model(str(model_dirs["llava"]))
        lora.lora_targets(base, AdapterConfig(target_modules=["qkv_nope"]))


def test_example_config_and_device_choice(model_dirs, data_dir, tmp_path):
    from pathlib import Path

    import yaml

    values = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "lora.yaml").read_text())
    values.update(model=str(model_dirs["llava"]), output_dir=str(tmp_path))
    values["data"]["train"] = [str(data_dir)]
    cfg = config_from_dict(values)
    assert cfg.train.lr == pytest.approx(2e-4) and cfg.lora.r == 16 and cfg.train.device == "auto"
    assert lora.select_device("cpu") == "cpu"
    assert lora.train_dtype("auto", "cpu") == torch.float32
    assert lora.train_dtype("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(InputError, match="float16 training needs a CUDA device"):
        lora.train_dtype("float16", "cpu")
    if not torch.cuda.is_available():
        assert lora.select_device("auto") == "cpu"
        with pytest.raises(InputError, match="no CUDA device"):
            lora.select_device("cuda")

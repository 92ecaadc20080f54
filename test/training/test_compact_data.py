"""Training-data options of the compact VLM (issue 11 item 4): mirror augmentation with left/right swapped,
ordering questions from the simulator truth, the describe-only and order splits of the data directory, and
the question-first chat template."""
from types import SimpleNamespace

import numpy as np
import pytest
from compact_fixtures import TINY_MODEL  # sets the offline environment before transformers loads

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

from spatial_vlm_ros.core.errors import InputError  # noqa: E402
from spatial_vlm_ros.training import compact, order_data, train_compact  # noqa: E402

TINY_MODEL = {**TINY_MODEL, "vision_layers": 1}


def test_swap_sides_exchanges_left_and_right_only():
    assert train_compact.swap_sides("Is the red box to the left of the blue box?") == \
        "Is the red box to the right of the blue box?"
    assert train_compact.swap_sides("Right, more to the right than left.") == "Left, more to the left than right."
    assert train_compact.swap_sides("The bright box is in front of it.") == "The bright box is in front of it."
    assert train_compact.swap_sides("Which is the leftmost? Rightmost: the mug.") == \
        "Which is the rightmost? Leftmost: the mug."


def test_mirror_row_flips_the_image_and_the_words():
    img = np.zeros((4, 6, 3), np.uint8)
    img[:, 0] = 255                                               # a white column on the left
    row = {"image": img, "question": "Name the objects from left to right.", "answer": "red box, blue box.",
           "kind": "order"}
    out = train_compact.mirror_row(row)
    arr = np.asarray(out["image"])
    assert arr[:, -1].min() == 255 and arr[:, 0].max() == 0
    assert out["question"] == "Name the objects from right to left." and out["answer"] == row["answer"]
    assert row["question"].endswith("left to right.")             # the input row is left alone
    rows = [dict(row) for _ in range(40)]
    a = train_compact.augment(rows, 0.5, seed=1, step=7)
    b = train_compact.augment(rows, 0.5, seed=1, step=7)
    flipped = [r["question"] != row["question"] for r in a]
    assert flipped == [r["question"] != row["question"] for r in b]   # a pure function of (seed, step)
    assert 5 < sum(flipped) < 35
    assert train_compact.augment(rows, 0.0, seed=1, step=7) is rows
    with pytest.raises(InputError, match="hflip"):
        train_compact.validate_train(train_compact.TrainConfig(hflip=1.5))


def _frame(centres_px, labels, dist_m=None):
    mask = np.zeros((20, 40), np.int32)
    for k, (x, y) in enumerate(centres_px, start=1):
        mask[y - 1:y + 2, x - 1:x + 2] = k
    truth = None
    if dist_m is not None:
        truth = SimpleNamespace(objects=[SimpleNamespace(label=lab, center=np.array([0.0, 0.0, d]))
                                         for lab, d in zip(labels, dist_m)])
    return SimpleNamespace(labels=list(labels), ids=list(range(1, len(labels) + 1)), mask=mask, truth=truth)


def test_frame_orders_follow_pixels_and_depth_and_skip_close_calls():
    f = _frame([(30, 5), (5, 15), (18, 10)], ["red box", "blue box", "green cylinder"], [1.0, 0.6, 0.8])
    orders = order_data.frame_orders(f)
    assert orders["left_right"] == ["blue box", "green cylinder", "red box"]
    assert orders["top_bottom"] == ["red box", "green cylinder", "blue box"]
    assert orders["front_back"] == ["blue box", "green cylinder", "red box"]
    close = _frame([(10, 5), (11, 15)], ["red box", "blue box"], [1.0, 1.01])
    assert set(order_data.frame_orders(close)) == {"top_bottom"}      # 1 px and 1 cm apart: not asked
    assert order_data.frame_orders(_frame([(5, 5), (30, 15)], ["red box", "red box"])) == {}
    assert order_data.order_answer(["red box", "blue box"]) == "red box, blue box."


def test_order_rows_are_the_synthesis_images_with_true_orders():
    rows = order_data.order_rows(6, seed=3, width=96, height=72)
    assert rows and {r["kind"] for r in rows} == {"order"}
    assert {r["question"] for r in rows} <= set(order_data.ORDER_QUESTIONS.values())
    from spatial_vlm_ros.synthesis.frames import SourceSpec, render_analytic
    from spatial_vlm_ros.training.vqa_data import row_image

    r = rows[0]
    frame = render_analytic(SourceSpec(kind="analytic", seed=3, width=96, height=72), r["frame_index"])
    assert np.array_equal(np.asarray(row_image(r["image"])), frame.stored_image)
    assert set(r["answer"].rstrip(".").split(", ")) == set(frame.labels)


def test_split_plan_and_data_validation():
    d = train_compact.DataConfig(scenes=10, eval_scenes=2)
    assert train_compact.split_plan(d, 5) == {"train": (10, 5, None), "eval": (2, 6, None)}
    d = train_compact.DataConfig(scenes=10, eval_scenes=2, describe_scenes=40, order_scenes=30)
    plan = train_compact.split_plan(d, 5)
    assert plan["train"] == (10, 5, ("yes_no", "choice", "metric")) and plan["describe"] == (40, 5, ("describe",))
    assert plan["order"] == (30, 5, ("order",)) and plan["eval_order"] == (2, 6, ("order",))
    with pytest.raises(InputError, match="describe_scenes"):
        train_compact.validate_data(train_compact.DataConfig(scenes=10, describe_scenes=5))
    with pytest.raises(InputError):
        train_compact.validate_data(train_compact.DataConfig(order_scenes=-1))


def test_prepare_data_builds_the_describe_and_order_splits(tmp_path):
    preset = train_compact.Preset("t", compact.CompactConfig(**TINY_MODEL),
                                  train_compact.DataConfig(scenes=2, eval_scenes=2, describe_scenes=4,
                                                           order_scenes=4, width=96, height=72, min_rows=10),
                                  train_compact.TrainConfig())
    train_ds, eval_ds = train_compact.prepare_data(preset, 0, tmp_path / "d", log=lambda *_: None)
    kinds = set(train_ds["kind"])
    assert {"describe", "order"} <= kinds and kinds - {"describe", "order"}
    assert "order" in set(eval_ds["kind"])
    assert {(tmp_path / "d" / k).is_dir() for k in ("train", "describe", "order", "eval", "eval_order")} == {True}
    main = datasets.load_from_disk(str(tmp_path / "d" / "train"))
    assert "describe" not in set(main["kind"])                  # describe only from the describe split
    # the first scenes' describe rows appear once
    desc = [r for r, k in zip(train_ds["sample_id"], train_ds["kind"]) if k == "describe"]
    assert len(desc) == len(set(desc))


def test_question_first_template_puts_the_image_after_the_question():
    tok = compact.train_tokenizer(["Where is the red box relative to the blue box?"] * 3, 300)
    for first in (False, True):
        cfg = compact.CompactConfig(**{**TINY_MODEL, "question_first": first})
        model, processor = compact.build_compact(cfg, tok, seed=0)
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is it?"}]}]
        text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        assert (text.index("Where is it?") < text.index("<image>")) == first
        ids = processor(text=[text], images=[np.zeros((24, 32, 3), np.uint8)], return_tensors="pt")["input_ids"]
        assert int((ids == model.config.image_token_id).sum()) == cfg.image_tokens
    with pytest.raises(InputError, match="question_first"):
        compact.CompactConfig(**{**TINY_MODEL, "question_first": "yes"}).validate()

"""The transformers backend on a tiny random LLaVA loaded from a local safetensors directory."""
import numpy as np
import pytest
import torch

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.vlm.engine import GenerationOptions, ObjectBox, VLMRequest


def test_generates_batched_deterministic_answers(torch_engine, make_image):
    requests = [VLMRequest("Where is the mug?", make_image(1)),
                VLMRequest("Is the bowl left of the mug? Answer yes or no.", make_image(2))]
    opts = GenerationOptions(max_new_tokens=8, return_logprobs=True)
    batch = torch_engine.generate(requests, opts)
    assert len(batch) == 2
    for answer in batch:
        assert 1 <= len(answer.token_ids) <= 8
        assert len(answer.token_logprobs) == len(answer.token_ids)
        assert all(lp <= 0.0 for lp in answer.token_logprobs)
        assert answer.finish_reason in ("eos", "length")
    assert batch[0].prompt_tokens < batch[1].prompt_tokens          # longer question, more tokens
    again = torch_engine.generate(requests, opts)
    assert [a.token_ids for a in again] == [a.token_ids for a in batch]
    # left padding in the batch must not change the answer of the shorter prompt
    alone = torch_engine.answer(requests[0], opts)
    assert alone.token_ids == batch[0].token_ids
    np.testing.assert_allclose(alone.token_logprobs, batch[0].token_logprobs, atol=1e-4)


def test_logprobs_are_those_of_the_greedy_token(torch_engine, make_image):
    request = VLMRequest("Describe the scene.", make_image(3))
    answer = torch_engine.answer(request, GenerationOptions(max_new_tokens=1, return_logprobs=True))
    inputs = torch_engine._inputs([torch_engine.prompt(request)], [request.image], "left")
    with torch.inference_mode():
        logits = torch_engine.model(**inputs).logits[0, -1].float()
    lp = logits.log_softmax(-1)
    assert answer.token_ids[0] == int(lp.argmax())
    assert answer.token_logprobs[0] == pytest.approx(float(lp.max()), abs=1e-5)


def test_image_changes_the_prompt_and_text_only_works(torch_engine, make_image):
    with_image = torch_engine.answer(VLMRequest("What is here?", make_image(4)), GenerationOptions(4))
    text_only = torch_engine.answer(VLMRequest("What is here?"), GenerationOptions(4))
    assert with_image.prompt_tokens > text_only.prompt_tokens     # image placeholder tokens


def test_grounding_text_reaches_the_prompt(torch_engine, make_image):
    depth = np.full((48, 64), 0.8, dtype=np.float32)
    request = VLMRequest("Which is closer?", make_image(5), depth=depth,
                         boxes=(ObjectBox("mug", (2, 3, 20, 30)),), facts="- mug_1 \"mug\": center (0.10, 0.00, 0.80)")
    prompt = torch_engine.prompt(request)
    assert "mug_1" in prompt and "- mug: [2, 3, 20, 30], depth 0.80" in prompt
    assert prompt.index("mug_1") < prompt.index("Which is closer?")


def test_caption_scores_are_log_likelihoods(torch_engine, make_image):
    image = make_image(6)
    scores = torch_engine.score_captions(image, ["A mug.", "A mug. A mug. A mug."])
    assert scores.shape == (2,) and np.all(scores < 0)
    assert scores[1] < scores[0]                  # more tokens, each with log p < 0 under a random model


@pytest.mark.parametrize("bad, message", [
    (VLMRequest("   ", None), "empty"),
    (VLMRequest("q", np.zeros((4, 4), np.uint8)), "(H, W, 3)"),
    (VLMRequest("q", np.zeros((4, 4, 3), np.float32)), "uint8"),
    (VLMRequest("q", np.zeros((4, 4, 3), np.uint8), depth=np.zeros((3, 3))), "sizes differ"),
])
def test_bad_requests_raise_input_errors(torch_engine, bad, message):
    with pytest.raises(InputError, match=message):
        torch_engine.answer(bad)


def test_mixed_batch_and_bad_options_are_refused(torch_engine, make_image):
    with pytest.raises(InputError, match="all image"):
        torch_engine.generate([VLMRequest("a", make_image(1)), VLMRequest("b")])
    with pytest.raises(InputError, match="max_new_tokens"):
        torch_engine.answer(VLMRequest("a"), GenerationOptions(max_new_tokens=0))


def test_pickle_checkpoints_are_refused(tiny_llava_dir, tmp_path):
    """use_safetensors=True: a directory holding only a pickle checkpoint does not load."""
    import shutil

    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    for f in tiny_llava_dir.iterdir():
        if f.name != "model.safetensors":
            shutil.copy(f, tmp_path / f.name)
    from safetensors.torch import load_file
    torch.save(load_file(str(tiny_llava_dir / "model.safetensors")), tmp_path / "pytorch_model.bin")
    with pytest.raises(Exception, match="safetensors|model.safetensors|does not appear"):
        TransformersEngine(str(tmp_path))

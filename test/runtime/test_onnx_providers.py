"""Provider selection TensorRT -> CUDA -> CPU without a GPU: the decision on faked provider lists, and the
session fallbacks on a faked ``onnxruntime.InferenceSession``."""
import logging

import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.runtime import providers
from spatial_vlm_ros.runtime.providers import CPU, CUDA, PROVIDER_PRIORITY, TENSORRT, open_session, provider_plan

ALL = list(PROVIDER_PRIORITY)


def test_all_providers_in_priority_order_with_their_options(tmp_path):
    plan = provider_plan("cuda:1", tmp_path / "cache", fp16=True, available=[CPU, CUDA, TENSORRT])
    assert [name for name, _ in plan.candidates] == [TENSORRT, CUDA, CPU]
    trt, cuda, cpu = (options for _, options in plan.candidates)
    assert trt == {"device_id": 1, "trt_fp16_enable": True, "trt_engine_cache_enable": True,
                   "trt_engine_cache_path": str(tmp_path / "cache")}
    assert cuda == {"device_id": 1} and cpu == {}
    assert plan.skipped == ()
    no_fp16 = provider_plan("cuda", tmp_path, fp16=False, available=ALL)
    assert no_fp16.candidates[0][1]["trt_fp16_enable"] is False and no_fp16.candidates[0][1]["device_id"] == 0


def test_missing_providers_are_skipped_with_a_reason(tmp_path):
    plan = provider_plan("cuda", tmp_path, available=[CPU])
    assert [name for name, _ in plan.candidates] == [CPU]
    assert plan.skipped == (f"{TENSORRT}: not in this onnxruntime build", f"{CUDA}: not in this onnxruntime build")
    only_cuda = provider_plan("auto", tmp_path, available=[CUDA, CPU])
    assert [name for name, _ in only_cuda.candidates] == [CUDA, CPU] and len(only_cuda.skipped) == 1


def test_cpu_device_and_explicit_order(tmp_path):
    assert [n for n, _ in provider_plan("cpu", tmp_path, available=ALL).candidates] == [CPU]
    assert [n for n, _ in provider_plan("cuda", tmp_path, available=ALL, order=[CUDA]).candidates] == [CUDA]
    with pytest.raises(InputError, match="bad device"):
        provider_plan("cuda:x", tmp_path, available=ALL)


class _FakeSession:
    """TensorRT fails to create, CUDA silently falls back to the CPU, the CPU works."""

    def __init__(self, path, sess_options=None, providers=()):
        first = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        if first == TENSORRT:
            raise RuntimeError("libnvinfer.so.10: cannot open shared object file\nmore detail")
        self.providers = [CPU] if first == CUDA else [first]

    def get_providers(self):
        return self.providers


def test_session_fallbacks_are_reported_and_logged(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr("onnxruntime.InferenceSession", _FakeSession)
    with caplog.at_level(logging.WARNING, logger=providers.__name__):
        session, provider, reasons = open_session(tmp_path / "g.onnx", device="cuda", available=ALL)
    assert provider == CPU and session.get_providers() == [CPU]
    assert reasons == [f"{TENSORRT}: session creation failed: libnvinfer.so.10: cannot open shared object file",
                       f"{CUDA}: could not be initialised (libraries or device missing), session fell back to "
                       f"{CPU}"]
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == reasons


def test_no_working_provider_is_an_input_error(monkeypatch, tmp_path):
    monkeypatch.setattr("onnxruntime.InferenceSession", _FakeSession)
    with pytest.raises(InputError, match="no onnxruntime provider could open g.onnx"):
        open_session(tmp_path / "g.onnx", device="cuda", available=[TENSORRT])


def test_a_real_graph_opens_on_the_cpu_or_says_why_not(tmp_path):
    """With onnxruntime's real provider list: "cpu" opens on the CPU with nothing skipped; "cuda" ends on a
    GPU provider or on the CPU with a reason for each GPU provider."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    onnx.save(model, tmp_path / "g.onnx")
    _, provider, reasons = open_session(tmp_path / "g.onnx", device="cpu")
    assert provider == CPU and reasons == []
    _, provider, reasons = open_session(tmp_path / "g.onnx", device="cuda")
    if provider == CPU:
        assert [r.split(":", 1)[0] for r in reasons] == [TENSORRT, CUDA]
    else:
        assert provider in providers.GPU_PROVIDERS

"""Device choice of the ONNX runtimes (NLU student and rescorer)."""

import onnxruntime as ort
import pytest

from nlu.onnx import onnx_providers
from nlu.runtime import load_default_parser

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_cpu_is_cpu_only():
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]


def test_auto_takes_cuda_only_when_onnxruntime_has_it():
    expected = (
        ["CUDAExecutionProvider", "CPUExecutionProvider"] if HAS_CUDA else ["CPUExecutionProvider"]
    )
    assert onnx_providers("auto") == expected


@pytest.mark.skipif(HAS_CUDA, reason="onnxruntime-gpu installed")
def test_cuda_without_onnxruntime_gpu_says_what_to_install():
    with pytest.raises(RuntimeError, match="onnxruntime-gpu"):
        onnx_providers("cuda")


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        onnx_providers("tpu")


def test_parser_session_uses_the_chosen_providers():
    parser = load_default_parser(device="cpu")
    assert parser is not None
    assert parser.session.get_providers() == ["CPUExecutionProvider"]

"""ONNX Runtime helpers shared by the runtime parser and the second-pass reranker."""

from __future__ import annotations


def onnx_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime execution providers for `device`: "auto", "cpu" or "cuda".

    "auto" takes CUDA when this onnxruntime build has it (the onnxruntime-gpu wheel) and the
    CPU otherwise; nodes CUDA lacks (the int8 MatMulInteger of a quantized model) run on the
    CPU provider by themselves. The rescorer's runtime uses the same choice.
    """
    import onnxruntime as ort  # noqa: PLC0415

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise RuntimeError("device 'cuda' needs onnxruntime-gpu: pip install onnxruntime-gpu")
    return ["CPUExecutionProvider"]

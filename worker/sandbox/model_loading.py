"""Loading a student's model file INSIDE the sandbox (never in the trusted grader).

`load(request)` answers the child's "load_model" op and returns an object the grader
then calls through its handle: `model(x)` runs forward in eval mode without autograd
and returns what the model returns. Formats:

- safetensors: a state dict for the assignment's declared architecture ("module:Class"
  from its public helpers), loaded with strict key and shape checks; every difference
  is listed in one readable message.
- torchscript: `torch.jit.load(path, map_location="cpu")`.
- onnx: an onnxruntime session on the CPU, callable with a tensor, returning a tensor.

A torch.save pickle is never loaded: intake refuses it before a sandbox starts, and
nothing here calls `torch.load`.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMATS = ("safetensors", "torchscript", "onnx")


def load(request: Mapping[str, Any]) -> Any:
    """Load the model file named by the request; raise with a message for the student."""
    path = Path(str(request.get("path") or ""))
    file_format = request.get("format")
    if file_format not in FORMATS:
        raise ValueError(f"unknown model format {file_format!r}; expected one of {FORMATS}")
    if not path.is_file():
        raise FileNotFoundError(f"the model file {path.name!r} is not in the submission")
    data = path.read_bytes()  # one read, with the OS's own error if it cannot be read
    if file_format == "safetensors":
        kwargs = request.get("kwargs") or {}
        return TorchModel(
            load_state_dict_model(data, path.name, request.get("architecture"), kwargs)
        )
    if file_format == "torchscript":
        scripted = torch.jit.load(io.BytesIO(data), map_location="cpu")  # type: ignore[no-untyped-call]
        return TorchModel(scripted)
    return OnnxModel(data)


class TorchModel:
    """A torch module in eval mode, called without autograd."""

    def __init__(self, module: torch.nn.Module) -> None:
        module.eval()
        self.module = module

    def __call__(self, x: torch.Tensor) -> Any:
        try:
            with torch.no_grad():
                return self.module(x)
        except RuntimeError as exc:
            if _is_out_of_memory(exc):
                raise MemoryError(f"the model ran out of memory: {_last_line(exc)}") from exc
            raise


def _is_out_of_memory(exc: BaseException) -> bool:
    text = str(exc)
    return (
        "can't allocate memory" in text
        or "std::bad_alloc" in text
        or "out of memory" in text.lower()
    )


def _last_line(exc: BaseException) -> str:
    """The error itself: TorchScript puts its traceback first and the error last."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:300] if lines else type(exc).__name__


# -- safetensors ---------------------------------------------------------------------


def load_state_dict_model(
    data: bytes, filename: str, architecture: str | None, kwargs: Mapping[str, Any]
) -> torch.nn.Module:
    from safetensors.torch import load as load_safetensors

    if not architecture:
        raise ValueError(
            "this exercise declares no architecture, so a safetensors state dict cannot be "
            "loaded: upload the model as TorchScript (torch.jit.script(model).save(...)) or ONNX"
        )
    module_name, _, class_name = str(architecture).partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    model = cls(**dict(kwargs))
    state = load_safetensors(data)
    problems = state_dict_problems(state, model.state_dict())
    if problems:
        raise ValueError(
            f"the weights in {filename} do not fit the course's {class_name}: "
            + "; ".join(problems)
            + _prefix_hint(state, model.state_dict())
            + f". Save the state dict of a {class_name} itself: "
            "save_file(model.state_dict(), 'model.safetensors')"
        )
    model.load_state_dict(state, strict=True)
    loaded: torch.nn.Module = model
    return loaded


def state_dict_problems(
    got: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]
) -> list[str]:
    """Every difference between two state dicts: missing and unexpected keys, shapes."""
    problems = []
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing:
        problems.append("missing: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected: " + ", ".join(unexpected))
    for key in expected:
        if key in got and tuple(got[key].shape) != tuple(expected[key].shape):
            problems.append(
                f"shape of {key}: got {tuple(got[key].shape)}, "
                f"expected {tuple(expected[key].shape)}"
            )
    for key in expected:
        if key in got and expected[key].is_floating_point() and not got[key].is_floating_point():
            problems.append(f"dtype of {key}: got {got[key].dtype}, expected a float tensor")
    return problems


def _prefix_hint(got: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """Keys saved from a wrapper (`module.fc1.weight`, `model.fc1.weight`) are a classic."""
    if not got or set(got) & set(expected):
        return ""
    for key in got:
        head, dot, rest = key.partition(".")
        if dot and rest in expected:
            return (
                f" (the keys carry the prefix '{head}.': it looks like the state dict of a "
                "module that wraps the model)"
            )
    return ""


# -- ONNX ----------------------------------------------------------------------------

_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}


class OnnxModel:
    """An ONNX model run by onnxruntime on the CPU; called with a tensor, returns a tensor.

    A model exported with a fixed batch size (a common slip: no dynamic axis) is run
    in chunks of that size, the last one padded, so it still answers any batch.
    """

    def __init__(self, data: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ValueError(
                f"the ONNX model has {len(inputs)} inputs ({names}); the grader feeds exactly "
                "one, a batch of inputs"
            )
        self.input = inputs[0]
        if self.input.type not in _ONNX_DTYPES:
            raise ValueError(
                f"the ONNX model's input {self.input.name!r} has type {self.input.type}; "
                "expected tensor(float)"
            )
        self.dtype = _ONNX_DTYPES[self.input.type]
        shape = list(self.input.shape or [])
        self.fixed_batch = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(x.detach().cpu().numpy().astype(self.dtype, copy=False))
        n = array.shape[0] if array.ndim else 0
        if self.fixed_batch and n != self.fixed_batch:
            return torch.from_numpy(self._chunked(array, self.fixed_batch))
        return torch.from_numpy(self._run(array))

    def _run(self, array: np.ndarray) -> np.ndarray:
        outputs = self.session.run(None, {self.input.name: array})
        first = outputs[0] if outputs else None
        if not isinstance(first, np.ndarray):
            raise TypeError(
                f"the ONNX model's first output is {type(first).__name__}, not a tensor"
            )
        return np.ascontiguousarray(first)

    def _chunked(self, array: np.ndarray, size: int) -> np.ndarray:
        pieces = []
        for start in range(0, array.shape[0], size):
            chunk = array[start : start + size]
            real = chunk.shape[0]
            if real < size:
                pad = np.zeros((size - real, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            pieces.append(self._run(chunk)[:real])
        if not pieces:
            return self._run(array)
        return np.concatenate(pieces)

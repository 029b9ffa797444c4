"""Model files the course self-check grades for `digits-classifier` (hidden, trusted side).

`autograder course check` calls `samples(workdir, loaded)`: it trains the reference
DigitsMLP (about a second on one CPU core, deterministic), saves it as safetensors,
TorchScript and ONNX, and adds an untrained model and one with the wrong head. Each
`ModelSample` says what the hidden tests must give it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from graders.course import LoadedAssignment
from graders.models import ModelSample

EXERCISE = "digits-classifier"


class WrongHead(nn.Module):
    """A classic slip: another hidden size and the output layer named `head`."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 100)
        self.head = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc1(x)))


def export_onnx(model: nn.Module, path: Path) -> None:
    """ONNX with a dynamic batch axis (the TorchScript-based exporter: no onnxscript needed)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(1, 64),), str(path), dynamo=False,
            input_names=["x"], output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        )


def samples(workdir: Path, loaded: LoadedAssignment) -> list[ModelSample]:
    from hw1_helpers import DigitsMLP

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same weights on every machine
    try:
        trained = loaded.reference.train_digits_mlp(seed=0)
    finally:
        torch.set_num_threads(threads)
    save_file(trained.state_dict(), str(workdir / "trained.safetensors"))
    torch.jit.script(trained).save(str(workdir / "trained.pt"))
    export_onnx(trained, workdir / "trained.onnx")

    torch.manual_seed(0)
    save_file(DigitsMLP().state_dict(), str(workdir / "untrained.safetensors"))
    save_file(WrongHead().state_dict(), str(workdir / "wrong_head.safetensors"))

    return [
        ModelSample("trained DigitsMLP, safetensors", EXERCISE, "trained.safetensors",
                    min_fraction=1.0),
        ModelSample("trained DigitsMLP, TorchScript", EXERCISE, "trained.pt",
                    min_fraction=1.0, same_as="trained DigitsMLP, safetensors"),
        ModelSample("trained DigitsMLP, ONNX", EXERCISE, "trained.onnx",
                    min_fraction=1.0, same_as="trained DigitsMLP, safetensors"),
        ModelSample("untrained DigitsMLP", EXERCISE, "untrained.safetensors",
                    max_fraction=0.0),
        ModelSample("wrong head", EXERCISE, "wrong_head.safetensors", max_fraction=0.0,
                    feedback=("missing: fc2.bias, fc2.weight",
                              "unexpected: head.bias, head.weight",
                              "shape of fc1.weight: got (100, 64), expected (128, 64)")),
    ]

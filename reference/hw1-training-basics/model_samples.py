"""Model files the course self-check grades for `digits-classifier` (hidden, trusted side).

`autograder course check` calls `samples(workdir, loaded)`: it trains the reference
DigitsMLP (a couple of seconds on one CPU core, deterministic), saves it as
safetensors, TorchScript and ONNX, and adds an untrained model, one with the wrong head
and a lookup table of all 1,797 public digits (no learning: 1.0 on the unperturbed
held-out images, so it shows that the evaluation set is not public data). Each
`ModelSample` says what the hidden tests must give it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from graders.course import LoadedAssignment
from graders.selfcheck_models import ModelSample

EXERCISE = "digits-classifier"


class WrongHead(nn.Module):
    """A classic slip: another hidden size and the output layer named `head`."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 100)
        self.head = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc1(x)))


class LookupTable(nn.Module):
    """Memorising, not learning: the label of the nearest of all 1,797 public digits."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("images", images.float())
        self.register_buffer("onehot", F.one_hot(labels.long(), 10).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nearest = torch.cdist(x, self.images).argmin(dim=1)
        return self.onehot[nearest] * 10.0


def lookup_table() -> LookupTable:
    """A LookupTable of every image of scikit-learn's digits (public and held-out)."""
    from hw1_helpers import load_digits_arrays

    images, labels = load_digits_arrays()
    return LookupTable(torch.from_numpy(images), torch.from_numpy(labels)).eval()


def export_onnx(model: nn.Module, path: Path) -> None:
    """ONNX with a dynamic batch axis (the TorchScript-based exporter: no onnxscript needed)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(1, 64),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
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
    torch.jit.script(lookup_table()).save(str(workdir / "lookup_table.pt"))

    return [
        ModelSample(
            "trained DigitsMLP, safetensors", EXERCISE, "trained.safetensors", min_fraction=1.0
        ),
        ModelSample(
            "trained DigitsMLP, TorchScript",
            EXERCISE,
            "trained.pt",
            min_fraction=1.0,
            same_as="trained DigitsMLP, safetensors",
        ),
        ModelSample(
            "trained DigitsMLP, ONNX",
            EXERCISE,
            "trained.onnx",
            min_fraction=1.0,
            same_as="trained DigitsMLP, safetensors",
        ),
        ModelSample("untrained DigitsMLP", EXERCISE, "untrained.safetensors", max_fraction=0.0),
        ModelSample(
            "wrong head",
            EXERCISE,
            "wrong_head.safetensors",
            max_fraction=0.0,
            feedback=(
                "missing: fc2.bias, fc2.weight",
                "unexpected: head.bias, head.weight",
                "shape of fc1.weight: got (100, 64), expected (128, 64)",
            ),
        ),
        # Clearly below full marks: at most half the points (it gets none today).
        ModelSample(
            "lookup table of the 1,797 public digits, TorchScript",
            EXERCISE,
            "lookup_table.pt",
            max_fraction=0.5,
        ),
    ]

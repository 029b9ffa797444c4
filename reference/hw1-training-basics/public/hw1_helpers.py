"""Public helpers of HW1: the `DigitsMLP` architecture and the public digits data.

Students import this module next to their notebook (the grader's sandbox imports it
too). The `digits-classifier` exercise accepts a safetensors state dict of
`DigitsMLP` (keys `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`), or any model
saved as TorchScript or ONNX, that maps a `[N, 64]` float32 batch of digits
(pixel / 16, values in [0, 1]) to `[N, 10]` float32 logits.

The data is scikit-learn's 8x8 digits (1797 images). `load_public_split()` gives the
public 70%, a fixed split stratified by digit; the other 30% are the course's
held-out images, on which the grader scores the model (their labels stay with the
grader). Training on anything but the public split defeats the point of the exercise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

INPUT_FEATURES = 64
NUM_CLASSES = 10
HIDDEN = 128

#: The seed of the fixed public / held-out split (stratified by digit).
SPLIT_SEED = 6
#: The share of each digit's images kept for the held-out set.
HELD_OUT_SHARE = 0.3


class DigitsMLP(nn.Module):
    """The course's digits classifier: Linear(64, 128) - ReLU - Linear(128, 10).

    forward(x `[N, 64]` float32, pixel / 16) -> logits `[N, 10]`. Save its weights with
    `safetensors.torch.save_file(model.state_dict(), "digits.safetensors")`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(INPUT_FEATURES, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits: inputs `[1797, 64]` float32 (pixel / 16) and labels int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    inputs = (np.asarray(digits.data, dtype=np.float64) / 16.0).astype(np.float32)
    return inputs, np.asarray(digits.target, dtype=np.int64)


def public_indices() -> np.ndarray:
    """Indices (into scikit-learn's digits) of the public split, sorted."""
    _, labels = load_digits_arrays()
    rng = np.random.default_rng(SPLIT_SEED)
    kept = []
    for digit in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(labels == digit))
        kept.append(members[round(len(members) * HELD_OUT_SHARE):])
    return np.sort(np.concatenate(kept))


def load_public_split() -> tuple[torch.Tensor, torch.Tensor]:
    """The public split: inputs `[1258, 64]` float32 (pixel / 16) and labels int64 `[1258]`.

    Split it further yourself (e.g. 80/20) to choose hyper-parameters on a validation set.
    """
    inputs, labels = load_digits_arrays()
    index = public_indices()
    return torch.from_numpy(inputs[index]), torch.from_numpy(labels[index])

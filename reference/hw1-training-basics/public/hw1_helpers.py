"""Public helpers of HW1: the `DigitsMLP` architecture and the public digits data.

Students import this module next to their notebook (the grader's sandbox imports it
too). The `digits-classifier` exercise accepts a safetensors state dict of
`DigitsMLP` (keys `fc1.weight`, `fc1.bias`, `fc2.weight`, `fc2.bias`), or any model
saved as TorchScript or ONNX, that maps a `[N, 64]` float32 batch of digits
(pixel / 16, values in [0, 1]) to `[N, 10]` float32 logits.

The data is scikit-learn's 8x8 digits (1797 images). `load_public_split()` gives the
public 70%, a fixed split stratified by digit; the other 30% are the course's
held-out images. Since scikit-learn's digits are public, the grader does not score
the model on those images as they are: it scores it on a perturbed copy of them that
it makes itself, from a secret seed that never leaves the grader. Each held-out image
is shifted by a random sub-pixel amount of up to one pixel in each direction, rotated
by up to 10 degrees and zoomed by a factor between 0.92 and 1.08 (bilinear
interpolation, zeros outside the image), then gets Gaussian pixel noise of standard
deviation 0.05 and is clipped to [0, 1]. `perturb_digits(inputs, generator)` below is
exactly that perturbation: train on perturbed copies of the public split (a fresh one
each epoch) and validate on perturbed images too. A model that memorises the public
images (a lookup table, a nearest-neighbour search) does not survive the perturbation.
Training on anything but the public split defeats the point of the exercise.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

INPUT_FEATURES = 64
NUM_CLASSES = 10
HIDDEN = 128

#: The seed of the fixed public / held-out split (stratified by digit).
SPLIT_SEED = 6
#: The share of each digit's images kept for the held-out set.
HELD_OUT_SHARE = 0.3

#: The perturbation of the held-out digits (see `perturb_digits`): the largest shift in
#: pixels along each axis, the largest rotation in degrees, the largest relative zoom
#: and the standard deviation of the pixel noise.
MAX_SHIFT = 1.0
MAX_ROTATION = 10.0
MAX_ZOOM = 0.08
NOISE_STD = 0.05


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
        kept.append(members[round(len(members) * HELD_OUT_SHARE) :])
    return np.sort(np.concatenate(kept))


def load_public_split() -> tuple[torch.Tensor, torch.Tensor]:
    """The public split: inputs `[1258, 64]` float32 (pixel / 16) and labels int64 `[1258]`.

    Split it further yourself (e.g. 80/20) to choose hyper-parameters on a validation set.
    """
    inputs, labels = load_digits_arrays()
    index = public_indices()
    return torch.from_numpy(inputs[index]), torch.from_numpy(labels[index])


def perturb_digits(inputs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The grader's perturbation of digits: `[N, 64]` float32 in, `[N, 64]` float32 out.

    Per image: a shift of up to MAX_SHIFT pixels along each axis (sub-pixel), a rotation
    of up to MAX_ROTATION degrees and a zoom of 1 +- MAX_ZOOM, all drawn uniformly, applied
    with bilinear interpolation (zeros outside the image); then Gaussian noise of
    standard deviation NOISE_STD on every pixel, and a clip to [0, 1]. Deterministic for
    a given generator state. The grader uses a secret seed; use your own, e.g.
    `perturb_digits(inputs, torch.Generator().manual_seed(epoch))`, for augmentation.
    """
    n = inputs.shape[0]
    images = inputs.reshape(n, 1, 8, 8).float()

    def uniform() -> torch.Tensor:
        return torch.rand(n, generator=generator) * 2 - 1

    angle = uniform() * math.radians(MAX_ROTATION)
    zoom = 1 + uniform() * MAX_ZOOM
    # affine_grid works in [-1, 1] coordinates: one pixel of 8 is 2 / 8.
    shift_x = uniform() * MAX_SHIFT * 2 / 8
    shift_y = uniform() * MAX_SHIFT * 2 / 8
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], dim=1), torch.stack([sin, cos, shift_y], dim=1)], dim=1
    )
    grid = F.affine_grid(theta, [n, 1, 8, 8], align_corners=False)
    warped = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    noisy = warped + NOISE_STD * torch.randn(warped.shape, generator=generator)
    return noisy.clamp(0.0, 1.0).reshape(n, 64)

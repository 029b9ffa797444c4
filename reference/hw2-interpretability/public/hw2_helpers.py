"""Public helpers of hw2-interpretability: the course's small CNN for 1x16x16 images.

Students and the grader's sandbox import this module (`from hw2_helpers import SmallCNN`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

NUM_CLASSES = 10


class SmallCNN(nn.Module):
    """A small CNN for `[N, 1, 16, 16]` images with 10 classes.

    Submodules (names as in `model.named_modules()`)::

        features.0  Conv2d(1, 8, 3, padding=1)    -> [N, 8, 16, 16]
        features.1  ReLU                          -> [N, 8, 16, 16]
        features.2  MaxPool2d(2)                  -> [N, 8, 8, 8]
        features.3  Conv2d(8, 16, 3, padding=1)   -> [N, 16, 8, 8]
        features.4  ReLU                          -> [N, 16, 8, 8]
        features.5  MaxPool2d(2)                  -> [N, 16, 4, 4]
        classifier.0 Flatten                      -> [N, 256]
        classifier.1 Linear(256, 32)
        classifier.2 ReLU
        classifier.3 Dropout(0.25)                (only active in train mode)
        classifier.4 Linear(32, 10)               -> logits [N, 10]

    The grader builds it in eval mode with its own weights.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 32),
            nn.ReLU(),
            nn.Dropout(0.25),
            nn.Linear(32, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def random_state(seed: int, bias_scale: float = 0.1) -> dict[str, torch.Tensor]:
    """A reproducible state dict for SmallCNN (He-scaled normal weights, small biases)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in SmallCNN().state_dict().items():
        if name.endswith("weight"):
            fan_in = math.prod(value.shape[1:])
            state[name] = torch.randn(value.shape, generator=g) * math.sqrt(2.0 / fan_in)
        else:
            state[name] = torch.randn(value.shape, generator=g) * bias_scale
    return state


def make_model(seed: int = 0) -> SmallCNN:
    """A SmallCNN with `random_state(seed)` weights, in eval mode (for trying things out)."""
    model = SmallCNN()
    model.load_state_dict(random_state(seed))
    return model.eval()


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    """`[n, 1, 16, 16]` float32 images with pixel values in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 16, 16, generator=g)

"""Public helpers of hw7-guarantees: a small MLP with a scalar output, for the NTK.

Students and the grader's sandbox import this module (`from hw7_helpers import ScalarMLP`).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ScalarMLP(nn.Module):
    """x `[N, in_dim]` -> f(x) `[N, 1]`: `depth` hidden tanh layers of width `hidden`.

    Layers are `net.0, net.2, ...` (Linear) with Tanh in between. With
    `freeze_first=True` the first Linear layer's parameters do not require grad (they
    are then not parameters of the tangent kernel).
    """

    def __init__(
        self, in_dim: int = 2, hidden: int = 16, depth: int = 2, freeze_first: bool = False
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        if freeze_first:
            for p in self.net[0].parameters():
                p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def random_state(model: nn.Module, seed: int, bias_scale: float = 0.1) -> dict[str, torch.Tensor]:
    """A reproducible state dict for `model` (1/sqrt(fan_in)-scaled normal weights)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, value in model.state_dict().items():
        if name.endswith("weight"):
            state[name] = torch.randn(value.shape, generator=g) / math.sqrt(value.shape[1])
        else:
            state[name] = torch.randn(value.shape, generator=g) * bias_scale
    return state


def make_model(
    in_dim: int = 2, hidden: int = 16, depth: int = 2, seed: int = 0, freeze_first: bool = False
) -> ScalarMLP:
    """A ScalarMLP with `random_state(..., seed)` weights, in eval mode."""
    model = ScalarMLP(in_dim, hidden, depth, freeze_first)
    model.load_state_dict(random_state(model, seed))
    return model.eval()

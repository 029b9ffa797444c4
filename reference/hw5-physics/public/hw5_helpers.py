"""Public helpers of hw5 (students and the sandbox see this module).

`SmallPINN` is the small network the grader passes as `u` to `heat_residual`, with
weights from `pinn_weights(seed)`; `SineDecay` and `PolynomialField` are closed-form
fields u(x, t). All map an input of shape [N, 2] (columns x, t) to [N, 1].
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SmallPINN(nn.Module):
    """A Tanh MLP [N, 2] -> [N, 1]: `depth` hidden layers of width `hidden`."""

    def __init__(self, hidden: int = 32, depth: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(2, hidden), nn.Tanh()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.Tanh()]
        layers.append(nn.Linear(hidden, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        return self.net(xt)


def pinn_weights(seed: int, hidden: int = 32, depth: int = 2) -> dict[str, torch.Tensor]:
    """A state dict for SmallPINN(hidden, depth), drawn from a generator seeded with `seed`.

    The grader builds its networks this way; `SmallPINN(32, 2)` loaded with
    `pinn_weights(0)` is the network of the first (visible) heat_residual test.
    """
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    sizes = [2] + [hidden] * depth + [1]
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        gain = 1.5 if layer < depth else 1.0
        state[f"net.{2 * layer}.weight"] = (
            torch.randn(fan_out, fan_in, generator=g) * gain / math.sqrt(fan_in)
        )
        state[f"net.{2 * layer}.bias"] = torch.randn(fan_out, generator=g) * 0.5
    return state


class SineDecay(nn.Module):
    """u(x, t) = amplitude * sin(pi x) * exp(-rate t).

    With rate = alpha * pi**2 this solves the heat equation u_t = alpha u_xx exactly.
    """

    def __init__(self, rate: float = 1.0, amplitude: float = 1.0) -> None:
        super().__init__()
        self.rate = float(rate)
        self.amplitude = float(amplitude)

    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        x, t = xt[:, 0:1], xt[:, 1:2]
        return self.amplitude * torch.sin(math.pi * x) * torch.exp(-self.rate * t)


class PolynomialField(nn.Module):
    """u(x, t) = x**3 t + x**2 + t**2 (so u_t = x**3 + 2 t and u_xx = 6 x t + 2)."""

    def forward(self, xt: torch.Tensor) -> torch.Tensor:
        x, t = xt[:, 0:1], xt[:, 1:2]
        return x**3 * t + x**2 + t**2

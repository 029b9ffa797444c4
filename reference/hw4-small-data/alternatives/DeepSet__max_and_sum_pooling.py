# Correct, written differently: a wide network pooling with both max and sum (einsum).
import torch
from torch import nn


class DeepSet(nn.Module):
    def __init__(self, in_dim, hidden, out_dim):
        super().__init__()
        width = 4 * hidden
        self.phi = nn.Sequential(
            nn.Linear(in_dim, width), nn.GELU(), nn.Linear(width, width), nn.GELU()
        )
        self.rho = nn.Sequential(nn.LayerNorm(2 * width), nn.Linear(2 * width, out_dim))

    def forward(self, x):
        h = self.phi(x)
        pooled_sum = torch.einsum("bnh->bh", h)
        pooled_max = h.max(dim=1).values
        return self.rho(torch.cat([pooled_sum, pooled_max], dim=1))

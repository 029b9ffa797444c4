# Classic mistake: a learned weight per position in the set (not permutation invariant).
import torch
from torch import nn


class DeepSet(nn.Module):
    def __init__(self, in_dim, hidden, out_dim):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.position = nn.Parameter(torch.rand(256))
        self.rho = nn.Linear(hidden, out_dim)

    def forward(self, x):
        w = self.position[: x.shape[1]]
        return self.rho((self.phi(x) * w[None, :, None]).sum(dim=1))

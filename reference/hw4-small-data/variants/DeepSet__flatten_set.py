# Classic mistake: flattens the set into one long vector instead of pooling over it
# (depends on the order and only works for the first set size it sees).
import torch
from torch import nn


class DeepSet(nn.Module):
    def __init__(self, in_dim, hidden, out_dim):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.rho = nn.Sequential(nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, x):
        h = self.phi(x)
        return self.rho(torch.flatten(h, start_dim=1))

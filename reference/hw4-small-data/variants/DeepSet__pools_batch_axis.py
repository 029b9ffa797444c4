# Classic mistake: pools over dim 0 (the batch) instead of dim 1 (the set).
from torch import nn


class DeepSet(nn.Module):
    def __init__(self, in_dim, hidden, out_dim):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.rho = nn.Linear(hidden, out_dim)

    def forward(self, x):
        return self.rho(self.phi(x).sum(dim=0))

# Classic mistake: centres the element features over the set before summing them, so the
# pooled vector is always zero and the network outputs a constant.
from torch import nn


class DeepSet(nn.Module):
    def __init__(self, in_dim, hidden, out_dim):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))

    def forward(self, x):
        h = self.phi(x)
        h = h - h.mean(dim=1, keepdim=True)
        return self.rho(h.sum(dim=1))

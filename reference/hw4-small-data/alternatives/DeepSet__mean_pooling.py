# Correct, written differently: mean pooling, a one-layer phi with Tanh, dropout (off in eval).
from torch import nn


class DeepSet(nn.Module):
    def __init__(self, in_dim, hidden, out_dim):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Dropout(0.2))
        self.rho = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, out_dim))

    def forward(self, x):
        return self.rho(self.phi(x).mean(dim=1))

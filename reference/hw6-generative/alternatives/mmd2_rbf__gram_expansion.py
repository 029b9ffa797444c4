# Correct, written differently: ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b, in float64.
import torch


def mmd2_rbf(x, y, sigma):
    x, y = x.double(), y.double()

    def k(a, b):
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return torch.exp(-sq.clamp_min(0) / (2 * sigma**2))

    return (k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()).float()

# Classic mistake: divides by 2 sigma instead of 2 sigma^2.
import torch


def mmd2_rbf(x, y, sigma):
    def k(a, b):
        return torch.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * sigma))

    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()

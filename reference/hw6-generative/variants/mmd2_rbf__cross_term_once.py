# Classic mistake: forgot the factor 2 on the cross term.
import torch


def mmd2_rbf(x, y, sigma):
    def k(a, b):
        return torch.exp(-((a[:, None] - b[None]) ** 2).sum(-1) / (2 * sigma**2))

    return k(x, x).mean() + k(y, y).mean() - k(x, y).mean()

# Classic mistake: a Laplace-like kernel, ||a - b|| instead of ||a - b||^2.
import torch


def mmd2_rbf(x, y, sigma):
    def k(a, b):
        return torch.exp(-torch.cdist(a, b) / (2 * sigma**2))

    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()

# Classic mistake: the unbiased estimator (drops the i = j terms), not the biased one asked for.
import torch


def mmd2_rbf(x, y, sigma):
    def k(a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * sigma**2))

    n, m = len(x), len(y)
    kxx = (k(x, x).sum() - n) / (n * (n - 1))
    kyy = (k(y, y).sum() - m) / (m * (m - 1))
    return kxx + kyy - 2 * k(x, y).mean()

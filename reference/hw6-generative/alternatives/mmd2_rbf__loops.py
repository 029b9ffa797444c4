# Correct, written differently: plain Python loops over the pairs.
import math

import torch


def mmd2_rbf(x, y, sigma):
    def mean_k(a, b):
        total = 0.0
        for ai in a:
            for bj in b:
                total += math.exp(-float(((ai - bj) ** 2).sum()) / (2 * sigma**2))
        return total / (len(a) * len(b))

    return torch.tensor(mean_k(x, x) + mean_k(y, y) - 2 * mean_k(x, y), dtype=torch.float32)

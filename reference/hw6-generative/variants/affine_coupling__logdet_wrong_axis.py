# Classic mistake: sums the log-determinant over the batch axis instead of the features.
import torch


def affine_coupling(x, mask, s, t):
    y = mask * x + (1 - mask) * (x * torch.exp(s) + t)
    return y, ((1 - mask) * s).sum(dim=0)

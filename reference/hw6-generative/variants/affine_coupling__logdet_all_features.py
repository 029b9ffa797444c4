# Classic mistake: the log-determinant counts the features the mask leaves unchanged.
import torch


def affine_coupling(x, mask, s, t):
    y = mask * x + (1 - mask) * (x * torch.exp(s) + t)
    return y, s.sum(dim=1)

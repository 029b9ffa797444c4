# Correct, written differently: torch.where on a boolean mask, division by exp(s).
import torch


def affine_coupling(x, mask, s, t):
    keep = mask.bool().expand_as(x)
    y = torch.where(keep, x, x * s.exp() + t)
    logdet = torch.where(keep, torch.zeros_like(s), s).sum(dim=-1)
    return y, logdet


def affine_coupling_inverse(y, mask, s, t):
    keep = mask.bool().expand_as(y)
    return torch.where(keep, y, (y - t) / s.exp())

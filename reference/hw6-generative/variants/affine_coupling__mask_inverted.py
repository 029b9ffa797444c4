# Classic mistake: transforms the masked features and keeps the others (mask read inverted);
# consistent with its own inverse, but not the convention asked for.
import torch


def affine_coupling(x, mask, s, t):
    y = (1 - mask) * x + mask * (x * torch.exp(s) + t)
    return y, (mask * s).sum(dim=1)


def affine_coupling_inverse(y, mask, s, t):
    return (1 - mask) * y + mask * ((y - t) * torch.exp(-s))

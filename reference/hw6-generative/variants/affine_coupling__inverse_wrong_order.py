# Classic mistake: the inverse undoes the scale before the shift: y * exp(-s) - t.
import torch


def affine_coupling_inverse(y, mask, s, t):
    return mask * y + (1 - mask) * (y * torch.exp(-s) - t)

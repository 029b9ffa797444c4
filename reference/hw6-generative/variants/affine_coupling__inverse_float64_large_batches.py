# Classic mistake: the inverse divides by exp(s) in float64 "for stability" on batches of 32
# or more and returns that: float64 instead of float32. Only the round-trip properties use
# such batches (N = 64 and 48): they check the dtype too.
import torch


def affine_coupling_inverse(y, mask, s, t):
    if y.shape[0] >= 32:
        y, mask, s, t = y.double(), mask.double(), s.double(), t.double()
    return mask * y + (1 - mask) * ((y - t) * torch.exp(-s))

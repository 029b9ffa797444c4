# Classic mistake: torch.roll wraps around, and the wrapped boundary values are kept.
import torch


def laplacian_1d(u, dx):
    lap = (torch.roll(u, -1) - 2 * u + torch.roll(u, 1)) / dx**2
    return lap[:-2]

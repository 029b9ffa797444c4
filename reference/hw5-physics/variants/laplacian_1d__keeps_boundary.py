# Classic mistake: returns all n points, with zeros at the two boundary points.
import torch


def laplacian_1d(u, dx):
    out = torch.zeros_like(u)
    out[1:-1] = (u[2:] - 2 * u[1:-1] + u[:-2]) / dx**2
    return out

# Correct, written differently: a convolution with the stencil [1, -2, 1] / dx^2.
import torch
import torch.nn.functional as F


def laplacian_1d(u, dx):
    stencil = torch.tensor([1.0, -2.0, 1.0], dtype=u.dtype).view(1, 1, 3)
    return F.conv1d(u.view(1, 1, -1), stencil).view(-1) / (dx * dx)

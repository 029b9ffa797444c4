# Classic mistake: the Gibbs kernel multiplies by eps instead of dividing by it.
import torch


def sinkhorn(a, b, cost, eps, n_iters):
    K = torch.exp(-cost * eps)
    u = torch.ones_like(a)
    v = torch.ones_like(b)
    for _ in range(n_iters):
        u = a / (K @ v)
        v = b / (K.T @ u)
    return u[:, None] * K * v[None, :]

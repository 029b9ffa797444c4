# Classic mistake: the v update uses K instead of K^T (crashes unless n == m, wrong then).
import torch


def sinkhorn(a, b, cost, eps, n_iters):
    K = torch.exp(-cost / eps)
    u = torch.ones_like(a)
    v = torch.ones_like(b)
    for _ in range(n_iters):
        u = a / (K @ v)
        v = b / (K @ u)
    return u[:, None] * K * v[None, :]

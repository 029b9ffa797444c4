# Classic mistake: updates v before u, so the rows (not the columns) are matched last.
import torch


def sinkhorn(a, b, cost, eps, n_iters):
    K = torch.exp(-cost / eps)
    u = torch.ones_like(a)
    v = torch.ones_like(b)
    for _ in range(n_iters):
        v = b / (K.T @ u)
        u = a / (K @ v)
    return u[:, None] * K * v[None, :]

# Classic mistake: "to avoid underflow" it solves problems of more than 1000 cells in
# float64 and returns that plan as it is: float64 instead of float32. Only the marginal
# properties use a problem that large (40 x 50): they check the plan's dtype too.
import torch


def sinkhorn(a, b, cost, eps, n_iters):
    if a.numel() * b.numel() > 1000:
        a, b, cost = a.double(), b.double(), cost.double()
    K = torch.exp(-cost / eps)
    u = torch.ones_like(a)
    v = torch.ones_like(b)
    for _ in range(n_iters):
        u = a / (K @ v)
        v = b / (K.T @ u)
    return u[:, None] * K * v[None, :]

# Correct, written differently: log-domain Sinkhorn with logsumexp (stable for any eps).
import torch


def sinkhorn(a, b, cost, eps, n_iters):
    log_k = -cost / eps
    log_a, log_b = a.log(), b.log()
    f = torch.zeros_like(a)
    g = torch.zeros_like(b)
    for _ in range(n_iters):
        f = log_a - torch.logsumexp(log_k + g[None, :], dim=1)
        g = log_b - torch.logsumexp(log_k + f[:, None], dim=0)
    return torch.exp(f[:, None] + log_k + g[None, :])

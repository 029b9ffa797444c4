# Correct, written differently: double precision, explicit diag matrices, cast back.
import torch


def sinkhorn(a, b, cost, eps, n_iters):
    a64, b64 = a.double(), b.double()
    K = torch.exp(-cost.double() / eps)
    u = torch.ones(len(a), dtype=torch.float64)
    v = torch.ones(len(b), dtype=torch.float64)
    for _ in range(n_iters):
        u = a64 / torch.mv(K, v)
        v = b64 / torch.mv(K.t(), u)
    return (torch.diag(u) @ K @ torch.diag(v)).to(cost.dtype)

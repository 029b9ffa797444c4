# Correct, written differently: torch.func.grad per sample, a Python loop over the batch.
import torch
from torch.func import grad


def integrated_gradients(model, x, target, baseline, steps):
    rows = []
    for n in range(x.shape[0]):
        def f(inp, n=n):
            return model(inp.unsqueeze(0))[0, target[n]]

        acc = torch.zeros_like(x[n])
        for k in range(1, steps + 1):
            acc = acc + grad(f)(baseline[n] + (x[n] - baseline[n]) * (k / steps))
        rows.append((x[n] - baseline[n]) * acc / steps)
    return torch.stack(rows)

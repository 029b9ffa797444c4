# Classic mistake: sums the gradients over the steps instead of averaging them.
import torch


def integrated_gradients(model, x, target, baseline, steps):
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):
        point = (baseline + k / steps * (x - baseline)).requires_grad_(True)
        score = model(point)[torch.arange(len(x)), target].sum()
        total += torch.autograd.grad(score, point)[0]
    return ((x - baseline) * total).detach()

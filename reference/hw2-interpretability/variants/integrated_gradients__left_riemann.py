# Classic mistake: alphas k / steps for k = 0..steps-1 (includes the baseline, misses x).
import torch


def integrated_gradients(model, x, target, baseline, steps):
    total = torch.zeros_like(x)
    for k in range(steps):
        point = (baseline + k / steps * (x - baseline)).requires_grad_(True)
        score = model(point)[torch.arange(len(x)), target].sum()
        total += torch.autograd.grad(score, point)[0]
    return ((x - baseline) * total / steps).detach()

# Correct, written differently: all interpolation points in one batch, linspace alphas.
import torch


def integrated_gradients(model, x, target, baseline, steps):
    alphas = torch.linspace(1.0 / steps, 1.0, steps).view(steps, 1, 1, 1, 1)
    points = ((1 - alphas) * baseline + alphas * x).reshape(-1, *x.shape[1:])
    points.requires_grad_(True)
    logits = model(points)
    idx = target.repeat(steps)
    grads = torch.autograd.grad(logits[torch.arange(len(idx)), idx].sum(), points)[0]
    avg = grads.view(steps, *x.shape).mean(dim=0)
    return (x - baseline) * avg

# Classic mistake: attributes the softmax probability of the target instead of its logit.
import torch


def integrated_gradients(model, x, target, baseline, steps):
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):
        point = (baseline + k / steps * (x - baseline)).requires_grad_(True)
        score = model(point).softmax(dim=1)[torch.arange(len(x)), target].sum()
        total += torch.autograd.grad(score, point)[0]
    return ((x - baseline) * total / steps).detach()

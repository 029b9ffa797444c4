"""Reference implementations of hw2 (hidden from students)."""

import torch
import torch.nn.functional as F
from torch import nn


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(0.0, 1.0).detach()


def grad_cam(model: nn.Module, x: torch.Tensor, target: torch.Tensor, layer: str) -> torch.Tensor:
    module = model.get_submodule(layer)
    store: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        store["A"] = output

    handle = module.register_forward_hook(hook)
    try:
        logits = model(x)
    finally:
        handle.remove()
    activations = store["A"]
    score = logits.gather(1, target.view(-1, 1)).sum()
    (grads,) = torch.autograd.grad(score, activations)
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * activations).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.amax(dim=(1, 2), keepdim=True)
    cam = torch.where(peak > 0, cam / torch.where(peak > 0, peak, torch.ones_like(peak)), cam)
    return cam.detach()


def integrated_gradients(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor, baseline: torch.Tensor, steps: int
) -> torch.Tensor:
    total = torch.zeros_like(x)
    index = target.view(-1, 1)
    for k in range(1, steps + 1):
        point = (baseline + (k / steps) * (x - baseline)).detach().requires_grad_(True)
        score = model(point).gather(1, index).sum()
        (grad,) = torch.autograd.grad(score, point)
        total += grad
    return ((x - baseline) * total / steps).detach()

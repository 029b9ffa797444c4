# Correct, written differently: .backward() on a summed loss divided by N, sample order kept.
import torch
from torch import nn


def fgsm(model, x, y, eps):
    x_adv = x.detach().clone()
    x_adv.requires_grad = True
    losses = nn.CrossEntropyLoss(reduction="none")(model(x_adv), y)
    (losses.sum() / len(y)).backward()
    out = x_adv + eps * x_adv.grad.sign()
    return torch.minimum(torch.maximum(out, torch.zeros_like(out)), torch.ones_like(out)).detach()

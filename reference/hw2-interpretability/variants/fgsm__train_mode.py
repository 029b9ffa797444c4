# Classic mistake: "gradients need train mode", so it calls model.train() (dropout is now on).
import torch
import torch.nn.functional as F


def fgsm(model, x, y, eps):
    model.train()
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp(0, 1).detach()

# Classic mistake: steps against the gradient (decreases the loss instead of increasing it).
import torch
import torch.nn.functional as F


def fgsm(model, x, y, eps):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return (x - eps * grad.sign()).clamp(0, 1).detach()

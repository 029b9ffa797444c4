# Classic mistake: forgets the final .detach(), so x_adv is still attached to the autograd
# graph of the loss (it has a grad_fn). The values are right; the contract says detached.
import torch.nn.functional as F


def fgsm(model, x, y, eps):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return (x + eps * x.grad.sign()).clamp(0, 1)

# Correct, written differently: torch.func.grad of a functional loss, manual log-softmax NLL.
# (The gradient torch.func returns stays attached to the model's parameters: detach it.)
import torch
from torch.func import grad


def fgsm(model, x, y, eps):
    def loss(inp):
        log_probs = torch.log_softmax(model(inp), dim=1)
        return -log_probs.gather(1, y[:, None]).mean()

    g = grad(loss)(x).detach()
    return torch.clamp(x + eps * torch.sign(g), min=0.0, max=1.0)

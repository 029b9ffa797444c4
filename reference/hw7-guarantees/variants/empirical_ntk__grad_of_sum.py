# Classic mistake: one gradient of the summed output per batch instead of one per sample.
import torch


def empirical_ntk(model, x1, x2):
    params = [p for p in model.parameters() if p.requires_grad]

    def summed_grad(x):
        grads = torch.autograd.grad(model(x).sum(), params)
        return torch.cat([g.flatten() for g in grads])

    g1, g2 = summed_grad(x1), summed_grad(x2)
    return (g1 @ g2).expand(x1.shape[0], x2.shape[0]).clone()

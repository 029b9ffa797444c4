# Classic mistake: differentiates with respect to every parameter, frozen ones included.
import torch


def empirical_ntk(model, x1, x2):
    params = list(model.parameters())
    for p in params:
        p.requires_grad_(True)

    def jac(x):
        rows = []
        for i in range(x.shape[0]):
            grads = torch.autograd.grad(model(x[i : i + 1]).squeeze(), params)
            rows.append(torch.cat([g.flatten() for g in grads]))
        return torch.stack(rows)

    return jac(x1) @ jac(x2).T

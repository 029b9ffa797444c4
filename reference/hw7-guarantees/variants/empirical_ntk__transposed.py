# Classic mistake: returns the [n2, n1] matrix (the Jacobians multiplied the wrong way round).
import torch


def empirical_ntk(model, x1, x2):
    params = [p for p in model.parameters() if p.requires_grad]

    def jac(x):
        rows = []
        for i in range(x.shape[0]):
            grads = torch.autograd.grad(model(x[i : i + 1]).squeeze(), params)
            rows.append(torch.cat([g.flatten() for g in grads]))
        return torch.stack(rows)

    return jac(x2) @ jac(x1).T

# Classic mistake: only the weight matrices count, the biases are forgotten.
import torch


def empirical_ntk(model, x1, x2):
    params = [p for name, p in model.named_parameters() if p.requires_grad and "weight" in name]

    def jac(x):
        rows = []
        for i in range(x.shape[0]):
            grads = torch.autograd.grad(model(x[i : i + 1]).squeeze(), params)
            rows.append(torch.cat([g.flatten() for g in grads]))
        return torch.stack(rows)

    return jac(x1) @ jac(x2).T

# Classic mistake: "for accuracy" it accumulates the kernel in float64 when there are more
# than 24 points in all, and returns it so: float64 instead of float32. Only the kernel's
# properties (transpose, symmetry, PSD, blocks) use that many points: they check the dtype.
import torch


def empirical_ntk(model, x1, x2):
    params = [p for p in model.parameters() if p.requires_grad]

    def jac(x):
        rows = []
        for i in range(x.shape[0]):
            grads = torch.autograd.grad(model(x[i : i + 1]).squeeze(), params)
            rows.append(torch.cat([g.flatten() for g in grads]))
        return torch.stack(rows)

    j1, j2 = jac(x1), jac(x2)
    if x1.shape[0] + x2.shape[0] > 24:
        return j1.double() @ j2.double().T
    return j1 @ j2.T

# Correct, written differently: a double loop of per-sample gradients and dot products.
import torch


def empirical_ntk(model, x1, x2):
    params = [p for p in model.parameters() if p.requires_grad]

    def grad_vec(x):
        model.zero_grad()
        out = model(x.unsqueeze(0))[0, 0]
        out.backward()
        return torch.cat([p.grad.reshape(-1).clone() for p in params])

    g2 = [grad_vec(b) for b in x2]
    K = torch.empty(len(x1), len(x2))
    for i, a in enumerate(x1):
        ga = grad_vec(a)
        for j, gb in enumerate(g2):
            K[i, j] = torch.dot(ga, gb)
    return K

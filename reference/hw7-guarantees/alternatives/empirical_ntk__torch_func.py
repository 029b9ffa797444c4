# Correct, written differently: torch.func.functional_call + vmap(jacrev), einsum over params.
import torch
from torch.func import functional_call, jacrev, vmap


def empirical_ntk(model, x1, x2):
    params = {k: v.detach() for k, v in model.named_parameters() if v.requires_grad}
    buffers = {k: v.detach() for k, v in model.named_parameters() if not v.requires_grad}

    def f(p, x):
        return functional_call(model, ({**p, **buffers},), (x.unsqueeze(0),)).squeeze()

    j1 = vmap(jacrev(f), (None, 0))(params, x1)
    j2 = vmap(jacrev(f), (None, 0))(params, x2)
    return sum(torch.einsum("i...,j...->ij", j1[k], j2[k]) for k in params)

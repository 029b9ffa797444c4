# Correct, written differently: differentiates with respect to the stacked [N, 2] input.
import torch


def heat_residual(u, x, t, alpha):
    xt = torch.stack([x, t], dim=1).requires_grad_(True)
    out = u(xt)
    (g,) = torch.autograd.grad(out, xt, grad_outputs=torch.ones_like(out), create_graph=True)
    (h,) = torch.autograd.grad(g[:, 0], xt, grad_outputs=torch.ones_like(g[:, 0]))
    return (g[:, 1] - alpha * h[:, 0]).detach()

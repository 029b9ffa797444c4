# Classic mistake: squares the first derivative instead of differentiating it again.
import torch


def heat_residual(u, x, t, alpha):
    x = x.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    out = u(torch.stack([x, t], dim=1)).squeeze(1)
    du_dx, du_dt = torch.autograd.grad(out.sum(), (x, t))
    return (du_dt - alpha * du_dx**2).detach()

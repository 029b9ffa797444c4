# Classic mistake: the diffusion term enters with the wrong sign.
import torch


def heat_residual(u, x, t, alpha):
    x = x.clone().requires_grad_(True)
    t = t.clone().requires_grad_(True)
    out = u(torch.stack([x, t], dim=1)).squeeze(1)
    du_dx, du_dt = torch.autograd.grad(out.sum(), (x, t), create_graph=True)
    (d2u_dx2,) = torch.autograd.grad(du_dx.sum(), x)
    return (du_dt + alpha * d2u_dx2).detach()

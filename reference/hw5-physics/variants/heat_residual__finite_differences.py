# Classic mistake: central finite differences in float32 instead of autograd (not accurate).
import torch


def heat_residual(u, x, t, alpha):
    h = 1e-2

    def f(xx, tt):
        return u(torch.stack([xx, tt], dim=1)).squeeze(1).detach()

    du_dt = (f(x, t + h) - f(x, t - h)) / (2 * h)
    d2u_dx2 = (f(x + h, t) - 2 * f(x, t) + f(x - h, t)) / h**2
    return du_dt - alpha * d2u_dx2

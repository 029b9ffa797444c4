"""Reference implementations of hw6 (hidden from students)."""

import torch
import torch.nn.functional as F


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return mu + torch.exp(0.5 * logvar) * noise


def vae_loss(
    x: torch.Tensor, x_logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    recon = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").sum(dim=1)
    kl = -0.5 * (1 + logvar - mu**2 - torch.exp(logvar)).sum(dim=1)
    return (recon + kl).mean()


def _rbf(a: torch.Tensor, b: torch.Tensor, sigma: float) -> torch.Tensor:
    sq = ((a[:, None, :] - b[None, :, :]) ** 2).sum(dim=-1)
    return torch.exp(-sq / (2 * sigma**2))


def mmd2_rbf(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    return _rbf(x, x, sigma).mean() + _rbf(y, y, sigma).mean() - 2 * _rbf(x, y, sigma).mean()


def affine_coupling(
    x: torch.Tensor, mask: torch.Tensor, s: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    y = mask * x + (1 - mask) * (x * torch.exp(s) + t)
    logdet = ((1 - mask) * s).sum(dim=1)
    return y, logdet


def affine_coupling_inverse(
    y: torch.Tensor, mask: torch.Tensor, s: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    return mask * y + (1 - mask) * ((y - t) * torch.exp(-s))

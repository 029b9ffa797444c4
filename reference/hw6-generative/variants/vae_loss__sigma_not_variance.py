# Classic mistake: uses sigma = exp(0.5 logvar) where the KL needs sigma^2 = exp(logvar).
import torch
import torch.nn.functional as F


def vae_loss(x, x_logits, mu, logvar):
    recon = F.binary_cross_entropy_with_logits(x_logits, x, reduction="none").sum(dim=1)
    kl = -0.5 * (1 + logvar - mu**2 - torch.exp(0.5 * logvar)).sum(dim=1)
    return (recon + kl).mean()

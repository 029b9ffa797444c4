# Classic mistake: the default reduction averages the BCE over pixels instead of summing it.
import torch
import torch.nn.functional as F


def vae_loss(x, x_logits, mu, logvar):
    recon = F.binary_cross_entropy_with_logits(x_logits, x)
    kl = -0.5 * (1 + logvar - mu**2 - torch.exp(logvar)).sum(dim=1).mean()
    return recon + kl

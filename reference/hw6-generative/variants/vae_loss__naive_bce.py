# Classic mistake: BCE from sigmoid probabilities; log(1 - sigmoid(60)) = log(0) in float32.
import torch


def vae_loss(x, x_logits, mu, logvar):
    p = torch.sigmoid(x_logits)
    recon = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(dim=1)
    kl = -0.5 * (1 + logvar - mu**2 - torch.exp(logvar)).sum(dim=1)
    return (recon + kl).mean()

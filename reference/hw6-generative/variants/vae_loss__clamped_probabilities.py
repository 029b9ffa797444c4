# Classic mistake: "fixes" log(0) by clamping the sigmoid to [1e-7, 1 - 1e-7]: finite, but
# every BCE term is capped near 16, wrong for confident logits (and 1 - 1e-7 is 1 in float32).
import torch


def vae_loss(x, x_logits, mu, logvar):
    p = torch.sigmoid(x_logits).clamp(1e-7, 1 - 1e-7)
    recon = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(dim=1)
    kl = -0.5 * (1 + logvar - mu**2 - torch.exp(logvar)).sum(dim=1)
    return (recon + kl).mean()

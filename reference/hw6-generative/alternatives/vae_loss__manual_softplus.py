# Correct, written differently: BCE with logits as softplus(l) - x * l, KL term by term.
import torch
import torch.nn.functional as F


def vae_loss(x, x_logits, mu, logvar):
    recon = (F.softplus(x_logits) - x * x_logits).sum(dim=1)
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(dim=1)
    return recon.mean() + kl.mean()

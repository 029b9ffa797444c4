# Classic mistake: draws fresh noise instead of using the noise it was given.
import torch


def reparameterize(mu, logvar, noise):
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

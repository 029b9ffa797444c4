# Classic mistake: exp(logvar) is the variance, not the standard deviation.
import torch


def reparameterize(mu, logvar, noise):
    return mu + torch.exp(logvar) * noise

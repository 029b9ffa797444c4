# Correct, written differently: std = sqrt(exp(logvar)), with torch.addcmul.
import torch


def reparameterize(mu, logvar, noise):
    std = torch.sqrt(torch.exp(logvar))
    return torch.addcmul(mu, std, noise)

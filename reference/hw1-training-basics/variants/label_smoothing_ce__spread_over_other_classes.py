# Classic mistake: the smoothing mass goes to the C - 1 wrong classes only.
import torch


def label_smoothing_ce(logits, target, smoothing):
    n, c = logits.shape
    log_probs = torch.log_softmax(logits, dim=1)
    q = torch.full_like(log_probs, smoothing / (c - 1))
    q[torch.arange(n), target] = 1.0 - smoothing
    return -(q * log_probs).sum(dim=1).mean()

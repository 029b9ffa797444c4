"""Reference implementations of hw1 (hidden from students)."""

import torch


def label_smoothing_ce(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float
) -> torch.Tensor:
    n, c = logits.shape
    log_probs = torch.log_softmax(logits, dim=1)
    q = torch.full_like(log_probs, smoothing / c)
    q[torch.arange(n), target] += 1.0 - smoothing
    return -(q * log_probs).sum(dim=1).mean()


def early_stopping_epoch(val_losses: list[float], patience: int, min_delta: float = 0.0) -> int:
    best = float("inf")
    wait = 0
    for epoch, loss in enumerate(val_losses):
        if loss < best - min_delta:
            best = loss
            wait = 0
        else:
            wait += 1
            if wait >= patience:
                return epoch
    return len(val_losses) - 1

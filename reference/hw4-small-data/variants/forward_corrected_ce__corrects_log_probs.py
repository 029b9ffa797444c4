# Classic mistake: applies T to the log-probabilities instead of the probabilities.
import torch


def forward_corrected_ce(logits, noisy_target, T):
    log_p = torch.log_softmax(logits, dim=1)
    corrected = log_p @ T
    return -corrected[torch.arange(len(noisy_target)), noisy_target].mean()

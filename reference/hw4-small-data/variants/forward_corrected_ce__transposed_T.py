# Classic mistake: multiplies by T^T (reads T as P(clean | noisy)).
import torch


def forward_corrected_ce(logits, noisy_target, T):
    p = torch.softmax(logits, dim=1)
    noisy_p = p @ T.T
    return -torch.log(noisy_p[torch.arange(len(noisy_target)), noisy_target]).mean()

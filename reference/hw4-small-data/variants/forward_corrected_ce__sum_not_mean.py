# Classic mistake: sums the per-sample losses instead of averaging them.
import torch


def forward_corrected_ce(logits, noisy_target, T):
    p = torch.softmax(logits, dim=1)
    noisy_p = p @ T
    return -torch.log(noisy_p[torch.arange(len(noisy_target)), noisy_target]).sum()

# Correct, written differently: log-domain, log (p T)[n, y] = logsumexp_i(log p_i + log T[i, y]).
import torch


def forward_corrected_ce(logits, noisy_target, T):
    log_p = torch.log_softmax(logits, dim=1)
    log_t = torch.log(T[:, noisy_target]).T  # [N, C]: log T[i, y_n]
    return -torch.logsumexp(log_p + log_t, dim=1).mean()

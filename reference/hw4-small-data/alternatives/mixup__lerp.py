# Correct, written differently: torch.lerp and index_select.
import torch


def mixup(x, y, lam, perm):
    x_other = torch.index_select(x, 0, perm)
    y_other = torch.index_select(y, 0, perm)
    return torch.lerp(x_other, x, lam), torch.lerp(y_other, y, lam)

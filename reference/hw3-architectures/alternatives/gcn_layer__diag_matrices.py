# Correct, written differently: explicit diagonal matrices and torch.linalg.multi_dot.
import torch


def gcn_layer(adj, x, weight):
    a_hat = adj.clone()
    a_hat.fill_diagonal_(1.0)
    d_half = torch.diag(a_hat.sum(dim=0) ** -0.5)
    return torch.linalg.multi_dot([d_half, a_hat, d_half, x, weight])

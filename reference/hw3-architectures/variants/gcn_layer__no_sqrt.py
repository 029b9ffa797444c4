# Classic mistake: D^-1 A_hat D^-1 (forgets the square roots).
import torch


def gcn_layer(adj, x, weight):
    a_hat = adj + torch.eye(adj.shape[0])
    d = 1.0 / a_hat.sum(dim=1)
    return (d[:, None] * a_hat * d[None, :]) @ x @ weight

# Classic mistake: normalises adj itself, without adding the self loops (A_hat = adj + I).
import torch


def gcn_layer(adj, x, weight):
    deg = adj.sum(dim=1).clamp_min(1.0)
    d = deg.pow(-0.5)
    return (d[:, None] * adj * d[None, :]) @ x @ weight

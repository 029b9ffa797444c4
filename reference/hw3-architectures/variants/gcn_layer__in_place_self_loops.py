# Classic mistake: adds the self loops to the caller's adjacency matrix in place.
import torch


def gcn_layer(adj, x, weight):
    adj += torch.eye(adj.shape[0])
    d = adj.sum(dim=1).rsqrt()
    return (d[:, None] * adj * d[None, :]) @ x @ weight

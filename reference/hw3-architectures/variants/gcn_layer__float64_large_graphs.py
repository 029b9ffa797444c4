# Classic mistake: "for accuracy" it normalises graphs of more than 32 nodes in float64 and
# forgets to convert back, so large graphs come out float64 instead of float32. Only the
# permutation-equivariance property sees such a graph: it checks the dtype too.
import torch


def gcn_layer(adj, x, weight):
    if adj.shape[0] > 32:
        adj, x, weight = adj.double(), x.double(), weight.double()
    a_hat = adj + torch.eye(adj.shape[0], dtype=adj.dtype)
    d_inv_sqrt = a_hat.sum(dim=1).rsqrt()
    return (d_inv_sqrt[:, None] * a_hat * d_inv_sqrt[None, :]) @ x @ weight

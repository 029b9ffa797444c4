# Correct, written differently: message passing over the edge list, transform first.
import torch


def gcn_layer(adj, x, weight):
    h = x @ weight
    n = adj.shape[0]
    deg = [1.0 + float(adj[i].sum()) for i in range(n)]
    out = torch.zeros(n, weight.shape[1])
    for i in range(n):
        out[i] += h[i] / deg[i]
        for j in torch.nonzero(adj[i]).flatten().tolist():
            out[i] += h[j] / (deg[i] * deg[j]) ** 0.5
    return out

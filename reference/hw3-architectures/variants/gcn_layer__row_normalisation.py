# Classic mistake: random-walk normalisation D^-1 A_hat instead of D^-1/2 A_hat D^-1/2.
import torch


def gcn_layer(adj, x, weight):
    a_hat = adj + torch.eye(adj.shape[0])
    return (a_hat / a_hat.sum(dim=1, keepdim=True)) @ x @ weight

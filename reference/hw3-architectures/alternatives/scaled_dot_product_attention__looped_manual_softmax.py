# Correct, written differently: a loop over the batch, a hand-written stable softmax, -1e9 mask.
import math

import torch


def scaled_dot_product_attention(q, k, v, mask=None):
    outs, ws = [], []
    full_mask = None
    if mask is not None:
        full_mask = mask.expand(q.shape[0], q.shape[1], k.shape[1])
    for b in range(q.shape[0]):
        scores = torch.matmul(q[b], k[b].T) / math.sqrt(q.shape[2])
        if full_mask is not None:
            scores = scores + (~full_mask[b]).float() * -1e9
        scores = scores - scores.max(dim=1, keepdim=True).values
        e = torch.exp(scores)
        w = e / e.sum(dim=1, keepdim=True)
        ws.append(w)
        outs.append(torch.matmul(w, v[b]))
    return torch.stack(outs), torch.stack(ws)

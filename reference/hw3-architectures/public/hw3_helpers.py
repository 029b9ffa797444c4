"""Public helpers of hw3-architectures: masks and graphs to try your functions on.

Students and the grader's sandbox import this module (`from hw3_helpers import ...`).
"""

from __future__ import annotations

import torch


def causal_mask(length: int) -> torch.Tensor:
    """`[length, length]` bool, True on and below the diagonal (query i sees keys j <= i)."""
    return torch.ones(length, length, dtype=torch.bool).tril()


def padding_mask(lengths: list[int], max_length: int) -> torch.Tensor:
    """`[B, 1, max_length]` bool, True for the first lengths[b] keys of sequence b."""
    positions = torch.arange(max_length)
    return (positions[None, :] < torch.tensor(lengths)[:, None])[:, None, :]


def random_graph(n: int, p: float, seed: int = 0) -> torch.Tensor:
    """A symmetric 0/1 float32 adjacency matrix `[n, n]` without self loops (Erdos-Renyi)."""
    g = torch.Generator().manual_seed(seed)
    upper = (torch.rand(n, n, generator=g) < p).float().triu(diagonal=1)
    return upper + upper.T


def path_graph(n: int) -> torch.Tensor:
    """The adjacency matrix of the path 0 - 1 - ... - (n-1)."""
    adj = torch.zeros(n, n)
    idx = torch.arange(n - 1)
    adj[idx, idx + 1] = 1.0
    adj[idx + 1, idx] = 1.0
    return adj

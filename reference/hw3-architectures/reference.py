"""Reference implementations of hw3 (hidden from students)."""

import math

import torch


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def gcn_layer(adj: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    a_hat = adj + torch.eye(adj.shape[0], dtype=adj.dtype)
    d_inv_sqrt = a_hat.sum(dim=1).rsqrt()
    norm = d_inv_sqrt[:, None] * a_hat * d_inv_sqrt[None, :]
    return norm @ x @ weight


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def conv2d_output_shape(
    h: int,
    w: int,
    kernel: int | tuple[int, int],
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
) -> tuple[int, int]:
    k, s, p, d = _pair(kernel), _pair(stride), _pair(padding), _pair(dilation)
    return tuple(  # type: ignore[return-value]
        (size + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i, size in enumerate((h, w))
    )

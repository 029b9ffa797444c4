"""Hidden tests of hw3."""

import torch
from hw3_helpers import causal_mask, padding_mask, path_graph, random_graph

from graders.dsl import ExerciseBuilder, Probe, Suite

SEEDS = [31, 32, 33]
suite = Suite(seeds=SEEDS)


def _randn(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _qkv(
    seed: int, b: int, lq: int, lk: int, d: int, dv: int, scale: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, lq, d, generator=g) * scale
    k = torch.randn(b, lk, d, generator=g)
    v = torch.randn(b, lk, dv, generator=g)
    return q, k, v


def _random_mask(seed: int, b: int, lq: int, lk: int) -> torch.Tensor:
    """A random keep-mask with at least one kept key per row (and some rows fully kept)."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(b, lq, lk, generator=g) < 0.5
    mask[..., int(torch.randint(0, lk, (1,), generator=g))] = True
    mask[:, 0, :] = True
    return mask


@suite.exercise("scaled_dot_product_attention")
def _attention(ex: ExerciseBuilder) -> None:
    s = SEEDS
    ex.compare(
        "example: no mask, 1 x 3 queries, 4 keys, D = 2",
        _qkv(0, 1, 3, 4, 2, 2),
        points=0.5,
        visibility="visible",
    )
    ex.compare("no mask, D != Dv, Lq != Lk", _qkv(s[0], 4, 5, 7, 8, 3), points=0.5)
    ex.compare(
        "causal mask [L, L] broadcast over the batch",
        _qkv(s[1], 3, 6, 6, 4, 5),
        kwargs={"mask": causal_mask(6)},
        points=0.5,
    )
    ex.compare(
        "key padding mask [B, 1, Lk]",
        (*_qkv(s[2], 3, 4, 6, 8, 2), padding_mask([6, 3, 1], 6)),
        points=0.5,
        visibility="after_due",
    )
    ex.compare(
        "full [B, Lq, Lk] mask with partially masked rows",
        (*_qkv(s[0] + 1, 2, 5, 9, 6, 6), _random_mask(s[0] + 1, 2, 5, 9)),
        points=0.5,
    )
    ex.compare(
        "large scores stay finite, a single query",
        _qkv(s[1] + 1, 1, 1, 8, 16, 4, scale=60.0),
        points=0.25,
    )
    ex.compare("D = 64: the scaling matters", _qkv(s[2] + 1, 2, 3, 5, 64, 7), points=0.25)


@suite.exercise("gcn_layer")
def _gcn(ex: ExerciseBuilder) -> None:
    s = SEEDS
    ex.compare(
        "example: a path of 4 nodes",
        (path_graph(4), _randn(0, 4, 3), _randn(1, 3, 2)),
        points=0.5,
        visibility="visible",
    )
    ex.compare(
        "random graph, 10 nodes",
        (random_graph(10, 0.3, s[0]), _randn(s[0], 10, 5), _randn(s[0] + 1, 5, 4)),
        points=0.5,
    )
    adj = random_graph(9, 0.4, s[1])
    adj[[2, 6], :] = 0.0
    adj[:, [2, 6]] = 0.0
    ex.compare("isolated nodes", (adj, _randn(s[1], 9, 4), _randn(s[1] + 1, 4, 4)), points=0.25)
    ex.compare(
        "no edges at all",
        (torch.zeros(5, 5), _randn(s[2], 5, 3), _randn(s[2] + 1, 3, 6)),
        points=0.25,
    )
    ex.compare(
        "a single node",
        (torch.zeros(1, 1), _randn(s[2] + 2, 1, 4), _randn(s[2] + 3, 4, 2)),
        points=0.25,
        visibility="after_due",
    )
    complete = torch.ones(6, 6) - torch.eye(6)
    ex.compare(
        "complete graph", (complete, _randn(s[0] + 5, 6, 2), _randn(s[0] + 6, 2, 3)), points=0.25
    )

    # A larger graph than the compared ones: the property holds the result to the
    # contract (float32 [N, F_out]) on inputs no other test uses.
    @ex.property("permutation equivariance: permuting the nodes permutes the output", points=1.0)
    def _equivariance(p: Probe) -> None:
        n = 40
        g = torch.Generator().manual_seed(s[2] + 7)
        adj = random_graph(n, 0.15, s[2] + 7)
        x = torch.randn(n, 5, generator=g)
        weight = torch.randn(5, 3, generator=g)
        perm = torch.randperm(n, generator=g)
        out = p.tensor(p.call("gcn_layer", adj, x, weight), (n, 3))
        out_perm = p.tensor(p.call("gcn_layer", adj[perm][:, perm], x[perm], weight), (n, 3))
        p.compare(
            out_perm,
            out[perm],
            path="gcn_layer on the permuted graph",
            hint="it should equal the original output, permuted the same way",
        )


@suite.exercise("conv2d_output_shape")
def _conv_shape(ex: ExerciseBuilder) -> None:
    ex.contract(exact_types=True)  # "a tuple of two Python ints: floats (even 26.0) are wrong"
    ex.compare("example: 28 x 28, kernel 3", (28, 28, 3), points=0.25, visibility="visible")
    ex.compare("'same' padding", (32, 32, 3), kwargs={"padding": 1}, points=0.25)
    ex.compare("ResNet stem: 224, kernel 7, stride 2, padding 3", (224, 224, 7, 2, 3), points=0.25)
    ex.compare("stride 2 rounds down", (16, 17, 3, 2), points=0.25)
    ex.compare(
        "dilation", (32, 20, 3), kwargs={"stride": 1, "padding": 2, "dilation": 2}, points=0.25
    )
    ex.compare(
        "(h, w) pairs for every argument",
        (30, 17, (5, 3), (2, 1), (1, 0), (1, 2)),
        points=0.25,
        visibility="after_due",
    )
    ex.compare("kernel as large as the input", (5, 7, (5, 7)), points=0.125)
    ex.compare("1 x 1 kernel, stride 3", (10, 11, 1, 3), points=0.125)
    ex.compare(
        "mixed ints and pairs",
        (64, 48, 3),
        kwargs={"stride": (2, 3), "padding": 1, "dilation": (3, 1)},
        points=0.25,
    )

"""Hidden tests of hw6."""

from __future__ import annotations

import torch

from graders.dsl import ExerciseBuilder, Probe, Suite

SEEDS = [61, 62, 63]
suite = Suite(seeds=SEEDS)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- 1. reparameterize -------------------------------------------------------------------------


def _gaussian(seed: int, *shape: int, logvar_scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    g = _gen(seed)
    mu = torch.randn(*shape, generator=g)
    logvar = torch.randn(*shape, generator=g) * logvar_scale
    noise = torch.randn(*shape, generator=g)
    return mu, logvar, noise


@suite.exercise("reparameterize")
def _reparameterize(ex: ExerciseBuilder) -> None:
    ex.compare("example: [2, 3]", _gaussian(0, 2, 3), points=0.25, visibility="visible")
    ex.compare("batch [16, 8]", _gaussian(SEEDS[0], 16, 8), points=0.25)
    mu, _, noise = _gaussian(SEEDS[1], 10, 4)
    ex.compare("logvar = 0 gives mu + noise", (mu, torch.zeros(10, 4), noise), points=0.125)
    mu, _, noise = _gaussian(SEEDS[2], 6, 5)
    ex.compare(
        "small variance (logvar = -12)",
        (mu, torch.full((6, 5), -12.0), noise),
        points=0.125,
        visibility="after_due",
    )
    ex.compare("three dimensions [4, 5, 6]", _gaussian(SEEDS[0] + 100, 4, 5, 6), points=0.125)
    mu, _, noise = _gaussian(SEEDS[1] + 100, 8, 3)
    ex.compare(
        "large variance (logvar up to 4)",
        (mu, torch.linspace(0.0, 4.0, 24).reshape(8, 3), noise),
        points=0.125,
    )


# -- 2. vae_loss -------------------------------------------------------------------------------


def _vae_batch(
    seed: int, n: int, d: int, z: int, binary: bool = True, logit_scale: float = 2.0
) -> tuple[torch.Tensor, ...]:
    g = _gen(seed)
    x = torch.rand(n, d, generator=g)
    if binary:
        x = (x > 0.5).float()
    x_logits = torch.randn(n, d, generator=g) * logit_scale
    mu = torch.randn(n, z, generator=g)
    logvar = torch.randn(n, z, generator=g) * 0.5
    return x, x_logits, mu, logvar


def _confident_batch(
    seed: int, n: int, d: int, z: int, low: float, high: float, agree: bool = True
) -> tuple[torch.Tensor, ...]:
    """Binary x with logits of magnitude in [low, high] (a decoder sure of itself).

    agree=True: each logit's sign matches its pixel (a good decoder, tiny BCE terms);
    otherwise a random sign (confidently wrong on about half of the pixels).
    """
    g = _gen(seed)
    x = (torch.rand(n, d, generator=g) > 0.5).float()
    size = low + (high - low) * torch.rand(n, d, generator=g)
    if agree:
        sign = 2 * x - 1
    else:
        sign = torch.where(torch.rand(n, d, generator=g) > 0.5, 1.0, -1.0)
    mu = torch.randn(n, z, generator=g)
    logvar = torch.randn(n, z, generator=g) * 0.5
    return x, sign * size, mu, logvar


@suite.exercise("vae_loss")
def _vae_loss(ex: ExerciseBuilder) -> None:
    ex.compare("example: N=2, D=4, Z=2", _vae_batch(0, 2, 4, 2), points=0.5, visibility="visible")
    ex.compare("binary pixels, N=16, D=64, Z=8", _vae_batch(SEEDS[0], 16, 64, 8), points=0.25)
    ex.compare(
        "continuous targets in [0, 1]", _vae_batch(SEEDS[1], 12, 20, 4, binary=False), points=0.25
    )
    x, x_logits, mu, logvar = _vae_batch(SEEDS[2], 8, 16, 3)
    ex.compare(
        "mu = 0, logvar = 0: the KL term is zero",
        (x, x_logits, torch.zeros_like(mu), torch.zeros_like(logvar)),
        points=0.25,
    )
    ex.compare(
        "very confident logits (|logit| near 80) stay finite",
        _vae_batch(SEEDS[0] + 100, 8, 10, 2, logit_scale=30.0),
        points=0.5,
        visibility="after_due",
    )
    ex.compare(
        "a confident decoder that is right (|logit| 10 to 30)",
        _confident_batch(SEEDS[1] + 200, 16, 32, 4, 10.0, 30.0),
        points=0.25,
    )
    ex.compare(
        "confident logits of either sign (|logit| 15 to 40)",
        _confident_batch(SEEDS[2] + 200, 8, 24, 3, 15.0, 40.0, agree=False),
        points=0.5,
    )
    ex.compare("batch of one", _vae_batch(SEEDS[1] + 100, 1, 12, 5), points=0.25)
    ex.compare("MNIST-sized: D=784, Z=20", _vae_batch(SEEDS[2] + 100, 32, 784, 20), points=0.25)


# -- 3. mmd2_rbf -------------------------------------------------------------------------------


def _samples(seed: int, n: int, m: int, d: int, shift: float = 0.0) -> tuple[torch.Tensor, ...]:
    g = _gen(seed)
    return torch.randn(n, d, generator=g), torch.randn(m, d, generator=g) + shift


@suite.exercise("mmd2_rbf")
def _mmd(ex: ExerciseBuilder) -> None:
    x, y = _samples(0, 4, 5, 2, shift=1.0)
    ex.compare(
        "example: 4 vs 5 points in 2-D, sigma 1", (x, y, 1.0), points=0.5, visibility="visible"
    )
    x, y = _samples(SEEDS[0], 32, 32, 3)
    ex.compare("two samples of one distribution", (x, y, 1.5), points=0.5)
    x, y = _samples(SEEDS[1], 20, 30, 2, shift=0.7)
    ex.compare("shifted distribution, 20 vs 30 points", (x, y, 0.8), points=0.5)
    x, _ = _samples(SEEDS[2], 10, 1, 3)
    ex.compare("identical samples give 0", (x, x.clone(), 1.0), points=0.25)
    x, y = _samples(SEEDS[0] + 100, 1, 1, 2, shift=0.5)
    ex.compare("one point each", (x, y, 1.0), points=0.25, visibility="after_due")
    x, y = _samples(SEEDS[1] + 100, 15, 12, 2, shift=0.3)
    ex.compare("small bandwidth, sigma 0.3", (x, y, 0.3), points=0.25)
    x, y = _samples(SEEDS[2] + 100, 25, 18, 8, shift=0.5)
    ex.compare("large bandwidth, sigma 10, 8-D", (x, y, 10.0), points=0.25)
    x, y = _samples(SEEDS[0] + 200, 40, 35, 1, shift=0.4)
    ex.compare("1-D samples", (x, y, 0.5), points=0.5)


# -- 4. affine_coupling (+ affine_coupling_inverse) ----------------------------------------------


def _alternating(d: int, first: float = 1.0) -> torch.Tensor:
    mask = torch.zeros(d)
    mask[0 if first else 1 :: 2] = 1.0
    return mask


def _coupling(seed: int, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x, s (in [-2, 2]) and t, each [n, d]."""
    g = _gen(seed)
    x = torch.randn(n, d, generator=g)
    s = torch.tanh(torch.randn(n, d, generator=g)) * 2
    t = torch.randn(n, d, generator=g)
    return x, s, t


def _pair(p: Probe, value: object, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
    """affine_coupling's (y, logdet), held to the contract: float32 [N, D] and [N]."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise p.fail("affine_coupling should return a tuple (y, logdet)")
    y, logdet = value
    y = p.tensor(y, tuple(shape), what="y")
    logdet = p.tensor(logdet, (shape[0],), what="logdet")
    return y, logdet


@suite.exercise("affine_coupling", requires=["affine_coupling", "affine_coupling_inverse"])
def _coupling_tests(ex: ExerciseBuilder) -> None:
    x, s, t = _coupling(0, 3, 4)
    ex.compare(
        "example: forward, N=3, D=4, mask [1, 0, 1, 0]",
        (x, torch.tensor([1.0, 0.0, 1.0, 0.0]), s, t),
        points=0.5,
        visibility="visible",
    )
    x, s, t = _coupling(SEEDS[0], 16, 6)
    ex.compare(
        "forward, N=16, D=6, mask [0, 1, 0, 1, 0, 1]",
        (x, _alternating(6, False), s, t),
        points=0.25,
    )
    y, s, t = _coupling(SEEDS[1], 12, 5)
    ex.compare(
        "inverse, N=12, D=5",
        (y, _alternating(5), s, t),
        points=0.5,
        function="affine_coupling_inverse",
    )

    # The properties use larger batches than the compared cases (N = 64 and 48) and hold
    # every result to the contract (float32, the input's shape) before comparing.
    x_r, s_r, t_r = _coupling(SEEDS[2], 64, 8)
    mask_r = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0])

    @ex.property("inverse(forward(x)) gives x back", points=0.5)
    def _roundtrip(p: Probe) -> None:
        y, _ = _pair(p, p.call("affine_coupling", x_r, mask_r, s_r, t_r), x_r.shape)
        back = p.tensor(
            p.call("affine_coupling_inverse", y, mask_r, s_r, t_r),
            tuple(x_r.shape),
            what="affine_coupling_inverse's result",
        )
        p.compare(
            back,
            x_r,
            rtol=1e-4,
            atol=1e-5,
            path="affine_coupling_inverse(affine_coupling(x)[0])",
            hint="the inverse does not undo the forward pass",
        )

    x, s, t = _coupling(SEEDS[0] + 100, 5, 3)
    ex.compare(
        "mask of ones is the identity (logdet 0)",
        (x, torch.ones(3), s, t),
        points=0.25,
        visibility="after_due",
    )

    y_f, s_f, t_f = _coupling(SEEDS[1] + 100, 48, 6)
    mask_f = _alternating(6)

    @ex.property("forward(inverse(y)) gives y back", points=0.5)
    def _roundtrip_other_way(p: Probe) -> None:
        x = p.tensor(
            p.call("affine_coupling_inverse", y_f, mask_f, s_f, t_f),
            tuple(y_f.shape),
            what="affine_coupling_inverse's result",
        )
        again, _ = _pair(p, p.call("affine_coupling", x, mask_f, s_f, t_f), y_f.shape)
        p.compare(
            again,
            y_f,
            rtol=1e-4,
            atol=1e-5,
            path="affine_coupling(affine_coupling_inverse(y))[0]",
            hint="the forward pass does not undo the inverse",
        )

    x, _, t = _coupling(SEEDS[2] + 100, 9, 4)
    ex.compare(
        "s = 0: additive coupling, logdet 0",
        (x, _alternating(4), torch.zeros(9, 4), t),
        points=0.25,
    )
    x, s, t = _coupling(SEEDS[0] + 200, 1, 10)
    ex.compare("batch of one, D=10", (x, _alternating(10, False), s, t), points=0.25)

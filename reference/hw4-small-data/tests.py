"""Hidden tests of hw4."""

from __future__ import annotations

import torch

from graders.dsl import ExerciseBuilder, Probe, Suite
from graders.student import StudentError

SEEDS = [41, 42, 43]
suite = Suite(seeds=SEEDS)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- 1. sinkhorn ------------------------------------------------------------------------------


def _simplex(g: torch.Generator, n: int, uniform: bool = False) -> torch.Tensor:
    w = torch.ones(n) if uniform else torch.rand(n, generator=g) + 0.5
    return w / w.sum()


def _ot_problem(
    seed: int, n: int, m: int, d: int = 2, uniform: bool = False, normalise: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two weighted point clouds and their squared-distance cost (scaled to max 1)."""
    g = _gen(seed)
    xs = torch.randn(n, d, generator=g)
    xt = torch.randn(m, d, generator=g) + 0.5
    cost = ((xs[:, None, :] - xt[None, :, :]) ** 2).sum(-1)
    if normalise:
        cost = cost / cost.max()
    return _simplex(g, n, uniform), _simplex(g, m, uniform), cost


def _example_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a = torch.tensor([0.2, 0.5, 0.3])
    b = torch.tensor([0.25, 0.25, 0.25, 0.25])
    cost = torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 1.0, 2.0], [2.0, 1.0, 0.0, 1.0]])
    return a, b, cost


def _skewed(g: torch.Generator, n: int) -> torch.Tensor:
    """Strongly non-uniform marginals (weights spread over a factor of about 50)."""
    w = torch.exp(2.0 * torch.randn(n, generator=g)).clamp(0.05, 20.0)
    return w / w.sum()


def _skewed_problem(seed: int, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, b, cost = _ot_problem(seed, n, m)
    g = _gen(seed + 7)
    return _skewed(g, n), _skewed(g, m), cost


@suite.exercise("sinkhorn")
def _sinkhorn(ex: ExerciseBuilder) -> None:
    tol = {"rtol": 1e-3, "atol": 1e-5}
    a, b, cost = _example_problem()
    ex.compare(
        "example: 3 x 4 plan, eps 0.5, 10 iterations",
        (a, b, cost, 0.5, 10),
        points=0.25,
        visibility="visible",
        **tol,
    )
    a, b, cost = _ot_problem(SEEDS[0], 20, 30)
    ex.compare("rectangular problem, 20 x 30", (a, b, cost, 0.05, 100), points=0.25, **tol)
    a, b, cost = _ot_problem(SEEDS[1], 6, 8)
    ex.compare("a single iteration (u first, then v)", (a, b, cost, 0.1, 1), points=0.25, **tol)
    a, b, cost = _ot_problem(SEEDS[2], 16, 16, uniform=True)
    ex.compare(
        "square problem with a non-symmetric cost", (a, b, cost, 0.1, 60), points=0.25, **tol
    )
    a, b, cost = _ot_problem(SEEDS[0] + 100, 32, 24, d=3)
    ex.compare(
        "small eps = 0.02 (cost / eps up to 50)",
        (a, b, cost, 0.02, 200),
        points=0.25,
        visibility="after_due",
        **tol,
    )
    a, b, cost = _ot_problem(SEEDS[1] + 100, 12, 10)
    ex.compare("large eps = 1 (a blurry plan)", (a, b, cost, 1.0, 20), points=0.25, **tol)
    a, b, cost = _ot_problem(SEEDS[2] + 100, 10, 14, d=4, normalise=False)
    ex.compare(
        "unnormalised squared-distance cost, eps 2", (a, b, cost, 2.0, 50), points=0.25, **tol
    )
    a, b, cost = _ot_problem(SEEDS[0] + 200, 1, 5)
    ex.compare("a single source point", (a, b, cost, 0.1, 5), points=0.25, **tol)
    a, b, cost = _ot_problem(SEEDS[1] + 200, 10, 10, d=1)
    ex.compare("points on a line", (a, b, cost, 0.05, 50), points=0.25, **tol)
    a, b, cost = _skewed_problem(SEEDS[2] + 300, 5, 12)
    ex.compare(
        "two iterations, strongly asymmetric marginals, 5 x 12",
        (a, b, cost, 0.2, 2),
        points=0.25,
        **tol,
    )
    a, b, cost = _skewed_problem(SEEDS[0] + 300, 15, 4)
    ex.compare("three iterations, a tall 15 x 4 plan", (a, b, cost, 0.3, 3), points=0.25, **tol)

    # The properties use a larger problem than the compared ones (40 x 50), and hold the
    # plan to the contract (float32 [n, m]) before looking at its marginals.
    a_c, b_c, cost_c = _skewed_problem(SEEDS[2] + 200, 40, 50)
    shape = (40, 50)

    @ex.property("the plan's columns sum to b (after the v update)", points=0.75)
    def _columns(p: Probe) -> None:
        plan = p.tensor(p.call("sinkhorn", a_c, b_c, cost_c, 0.1, 3), shape, what="the plan")
        p.compare(
            plan.sum(dim=0),
            b_c,
            rtol=1e-3,
            atol=1e-5,
            path="the column sums of the plan",
            hint="after the last v update the columns must sum to b",
        )

    @ex.property("once converged, the plan's rows sum to a", points=0.5)
    def _rows(p: Probe) -> None:
        plan = p.tensor(p.call("sinkhorn", a_c, b_c, cost_c, 0.2, 300), shape, what="the plan")
        p.compare(
            plan.sum(dim=1),
            a_c,
            rtol=1e-3,
            atol=1e-5,
            path="the row sums of the plan",
            hint="after many iterations the rows must sum to a",
        )


# -- 2. forward_corrected_ce -------------------------------------------------------------------


def _noisy_batch(seed: int, n: int, c: int, scale: float = 2.0) -> tuple[torch.Tensor, ...]:
    g = _gen(seed)
    logits = torch.randn(n, c, generator=g) * scale
    target = torch.randint(0, c, (n,), generator=g)
    return logits, target, g


def _random_transition(g: torch.Generator, c: int, keep: float = 0.7) -> torch.Tensor:
    """Row-stochastic, strictly positive and not symmetric."""
    off = torch.rand(c, c, generator=g) + 0.05
    off.fill_diagonal_(0.0)
    off = off / off.sum(dim=1, keepdim=True) * (1 - keep)
    return off + keep * torch.eye(c)


def _example_transition() -> torch.Tensor:
    return torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.0, 0.3, 0.7]])


@suite.exercise("forward_corrected_ce")
def _forward_corrected(ex: ExerciseBuilder) -> None:
    g = _gen(0)
    logits = torch.randn(4, 3, generator=g)
    target = torch.randint(0, 3, (4,), generator=g)
    ex.compare(
        "example: 4 samples, 3 classes",
        (logits, target, _example_transition()),
        points=0.5,
        visibility="visible",
    )
    logits, target, g = _noisy_batch(SEEDS[0], 16, 10)
    ex.compare("identity T is plain cross-entropy", (logits, target, torch.eye(10)), points=0.5)
    logits, target, g = _noisy_batch(SEEDS[1], 32, 5)
    ex.compare(
        "asymmetric noise, 5 classes", (logits, target, _random_transition(g, 5)), points=0.5
    )
    logits, target, g = _noisy_batch(SEEDS[2], 24, 6)
    flip = torch.roll(torch.eye(6), shifts=1, dims=1)
    ex.compare(
        "pair-flip noise (40 % to the next class)",
        (logits, target, 0.6 * torch.eye(6) + 0.4 * flip),
        points=0.5,
        visibility="after_due",
    )
    logits, target, g = _noisy_batch(SEEDS[0] + 100, 1, 4)
    ex.compare("batch of one", (logits, target, _random_transition(g, 4)), points=0.25)
    logits, target, g = _noisy_batch(SEEDS[1] + 100, 8, 4, scale=30.0)
    ex.compare(
        "large logits stay finite", (logits, target, _random_transition(g, 4, 0.5)), points=0.25
    )
    logits, target, g = _noisy_batch(SEEDS[2] + 100, 64, 100)
    ex.compare("100 classes", (logits, target, _random_transition(g, 100, 0.9)), points=0.5)


# -- 3. mixup --------------------------------------------------------------------------------


def _onehot(target: torch.Tensor, c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(target, c).float()


@suite.exercise("mixup")
def _mixup(ex: ExerciseBuilder) -> None:
    g = _gen(0)
    x = torch.randn(4, 3, generator=g)
    y = _onehot(torch.tensor([0, 1, 1, 0]), 2)
    perm = torch.tensor([2, 0, 3, 1])
    ex.compare("example: 4 samples, lam 0.7", (x, y, 0.7, perm), points=0.5, visibility="visible")
    g = _gen(SEEDS[0])
    x = torch.rand(8, 1, 4, 4, generator=g)
    y = _onehot(torch.randint(0, 10, (8,), generator=g), 10)
    perm = torch.randperm(8, generator=g)
    ex.compare("images [8, 1, 4, 4] with one-hot labels", (x, y, 0.3, perm), points=0.25)
    g = _gen(SEEDS[1])
    x = torch.randn(10, 5, generator=g)
    y = torch.softmax(torch.randn(10, 4, generator=g), dim=1)
    perm = torch.randperm(10, generator=g)
    ex.compare("soft labels", (x, y, 0.85, perm), points=0.25)
    ex.compare("lam = 1 gives the batch back", (x, y, 1.0, perm), points=0.25)
    ex.compare(
        "lam = 0 gives the permuted batch", (x, y, 0.0, perm), points=0.25, visibility="after_due"
    )
    g = _gen(SEEDS[2])
    x = torch.randn(6, 3, 2, generator=g)
    y = _onehot(torch.randint(0, 3, (6,), generator=g), 3)
    ex.compare("identity permutation", (x, y, 0.4, torch.arange(6)), points=0.25)
    ex.compare("batch of one", (x[:1], y[:1], 0.6, torch.tensor([0])), points=0.25)


# -- 4. DeepSet (property-graded) --------------------------------------------------------------


def _sets(seed: int, b: int, n: int, d: int) -> torch.Tensor:
    return torch.randn(b, n, d, generator=_gen(seed))


def _model(p: Probe, in_dim: int, hidden: int, out_dim: int, seed: int) -> object:
    handle = p.construct("DeepSet", in_dim, hidden, out_dim, seed=seed)
    try:  # evaluate in eval mode (dropout off); a plain class without eval() is fine too
        p.student.call(handle, method="eval", keep=True)
    except StudentError as exc:
        if exc.outcome != "error":
            raise
    return handle


def _output(p: Probe, handle: object, x: torch.Tensor, out_dim: int) -> torch.Tensor:
    """forward(x), held to the contract: float32 [B, out_dim], finite."""
    out = p.tensor(p.call(handle, x), (x.shape[0], out_dim), what="forward's output")
    if not bool(torch.isfinite(out).all()):
        raise p.fail("forward's output is not finite")
    return out


def _invariant(p: Probe, out: torch.Tensor, out_perm: torch.Tensor, what: str) -> None:
    p.compare(
        out_perm,
        out,
        rtol=1e-4,
        atol=1e-5,
        path="the output",
        hint=f"not permutation invariant: {what} changes the output",
    )


@suite.exercise("DeepSet")
def _deepset(ex: ExerciseBuilder) -> None:
    @ex.property(
        "example: DeepSet(3, 16, 2) maps [4, 5, 3] to [4, 2]",
        points=0.5,
        visibility="visible",
        description="DeepSet(3, 16, 2)(torch.randn(4, 5, 3)).shape == (4, 2), float32",
    )
    def _shape(p: Probe) -> None:
        model = _model(p, 3, 16, 2, seed=0)
        _output(p, model, _sets(0, 4, 5, 3), 2)

    @ex.property("invariant to permuting the elements of the sets", points=0.5)
    def _perm(p: Probe) -> None:
        model = _model(p, 3, 32, 4, seed=SEEDS[0])
        x = _sets(SEEDS[0], 6, 7, 3)
        perm = torch.randperm(7, generator=_gen(SEEDS[0] + 1))
        out = _output(p, model, x, 4)
        _invariant(p, out, _output(p, model, x[:, perm], 4), "reordering the set")

    @ex.property(
        "invariant to a different permutation of each set", points=0.25, visibility="after_due"
    )
    def _perm_each(p: Probe) -> None:
        model = _model(p, 2, 16, 3, seed=SEEDS[1])
        x = _sets(SEEDS[1], 5, 9, 2)
        g = _gen(SEEDS[1] + 1)
        shuffled = torch.stack([x[i, torch.randperm(9, generator=g)] for i in range(5)])
        out = _output(p, model, x, 3)
        _invariant(p, out, _output(p, model, shuffled, 3), "reordering each set differently")

    @ex.property("not constant: different sets give different outputs", points=0.5)
    def _not_constant(p: Probe) -> None:
        model = _model(p, 3, 32, 2, seed=SEEDS[2])
        x1 = _sets(SEEDS[2], 4, 6, 3)
        x2 = _sets(SEEDS[2] + 1, 4, 6, 3) * 2.0 + 1.0
        out1 = _output(p, model, x1, 2)
        out2 = _output(p, model, x2, 2)
        if float((out1 - out2).abs().max()) <= 1e-6:
            raise p.fail(
                "the output does not depend on the input: two different batches of "
                "sets give the same outputs"
            )
        if float((out1[1:] - out1[:1]).abs().max()) <= 1e-6:
            raise p.fail("different sets in one batch all get the same output")

    @ex.property("changing one element of a set changes the output", points=0.25)
    def _one_element(p: Probe) -> None:
        model = _model(p, 3, 32, 3, seed=SEEDS[2] + 3)
        x = _sets(SEEDS[2] + 4, 5, 6, 3)
        changed = x.clone()
        changed[:, 2] = changed[:, 2] * -2.0 + 1.5
        out = _output(p, model, x, 3)
        moved = (_output(p, model, changed, 3) - out).abs().amax(dim=1)
        if float(moved.min()) <= 1e-4:
            raise p.fail(
                f"for {int((moved <= 1e-4).sum())} of the 5 sets the output does not "
                "change when one of their elements does (is the pooled vector "
                "always the same?)"
            )

    @ex.property("sets of a single element (n = 1)", points=0.25)
    def _single(p: Probe) -> None:
        model = _model(p, 4, 16, 3, seed=SEEDS[0] + 1)
        _output(p, model, _sets(SEEDS[0] + 2, 5, 1, 4), 3)

    @ex.property("one model handles several set sizes (n = 1, 4, 25)", points=0.25)
    def _sizes(p: Probe) -> None:
        model = _model(p, 3, 16, 2, seed=SEEDS[1] + 1)
        for n in (1, 4, 25):
            _output(p, model, _sets(SEEDS[1] + n, 3, n, 3), 2)
        x = _sets(SEEDS[1] + 2, 3, 4, 3)
        out = _output(p, model, x, 2)
        _invariant(
            p,
            out,
            _output(p, model, x.flip(1), 2),
            "reversing a set of 4 after other set sizes were used",
        )

    @ex.property("other sizes: DeepSet(5, 8, 1)", points=0.25)
    def _other(p: Probe) -> None:
        model = _model(p, 5, 8, 1, seed=SEEDS[2] + 1)
        x = _sets(SEEDS[2] + 2, 7, 3, 5)
        out = _output(p, model, x, 1)
        _invariant(p, out, _output(p, model, x[:, [2, 0, 1]], 1), "reordering the set")

    @ex.property("invariant on large sets (n = 50)", points=0.25)
    def _large(p: Probe) -> None:
        model = _model(p, 3, 32, 4, seed=SEEDS[0] + 2)
        x = _sets(SEEDS[0] + 3, 2, 50, 3)
        perm = torch.randperm(50, generator=_gen(SEEDS[0] + 4))
        out = _output(p, model, x, 4)
        _invariant(p, out, _output(p, model, x[:, perm], 4), "reordering the set")

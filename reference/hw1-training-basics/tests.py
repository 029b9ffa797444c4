"""Hidden tests of hw1."""

import torch

from graders.dsl import ExerciseBuilder, Suite

SEEDS = [11, 12, 13]
suite = Suite(seeds=SEEDS)


def _logits(seed: int, n: int, c: int, scale: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * scale
    target = torch.randint(0, c, (n,), generator=g)
    return logits, target


@suite.exercise("label_smoothing_ce")
def _label_smoothing(ex: ExerciseBuilder) -> None:
    logits, target = _logits(0, 4, 3, 1.0)
    ex.compare("example: 4 samples, 3 classes, smoothing 0.1", (logits, target, 0.1),
               points=0.5, visibility="visible")
    logits, target = _logits(SEEDS[0], 16, 10)
    ex.compare("no smoothing is plain cross-entropy", (logits, target, 0.0), points=0.5)
    logits, target = _logits(SEEDS[1], 32, 7)
    ex.compare("smoothing 0.3, 7 classes", (logits, target, 0.3), points=0.5)
    logits, target = _logits(SEEDS[2], 1, 5)
    ex.compare("batch of one", (logits, target, 0.2), points=0.5)
    logits, target = _logits(SEEDS[0] + 100, 8, 4, scale=200.0)
    ex.compare("extreme logits stay finite", (logits, target, 0.1), points=0.5,
               visibility="after_due")
    logits, target = _logits(SEEDS[1] + 100, 64, 100)
    ex.compare("many classes, strong smoothing", (logits, target, 0.9), points=0.5)


@suite.exercise("early_stopping_epoch")
def _early_stopping(ex: ExerciseBuilder) -> None:
    ex.compare("example: stops after patience", ([1.0, 0.8, 0.9, 0.85, 0.95], 2), points=0.5,
               visibility="visible")
    ex.compare("never stops", ([5.0, 4.0, 3.0, 2.0, 1.0], 2), points=0.25)
    ex.compare("a tie is not an improvement", ([1.0, 1.0, 1.0, 0.5], 2), points=0.25)
    ex.compare("min_delta", ([1.0, 0.95, 0.92, 0.91, 0.5], 3), kwargs={"min_delta": 0.1},
               points=0.25)
    ex.compare("patience 1", ([0.5, 0.6, 0.4], 1), points=0.125)
    ex.compare("a single epoch", ([0.3], 3), points=0.125)
    ex.compare("no epochs at all", ([], 2), points=0.25, visibility="after_due")
    g = torch.Generator().manual_seed(SEEDS[2])
    noisy = (torch.linspace(2.0, 0.5, 40) + 0.2 * torch.rand(40, generator=g)).tolist()
    ex.compare("a noisy curve", (noisy, 4), kwargs={"min_delta": 0.01}, points=0.25)

"""Hidden tests of hw1."""

import time
from functools import lru_cache

import torch

from graders.compare import Verdict
from graders.dsl import ExerciseBuilder, Fail, Suite
from graders.model_exercises import (
    accuracy_report,
    cached,
    check_logits,
    model_handle,
    predict,
    scaled_fraction,
)
from graders.student import Student

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
    ex.compare(
        "example: 4 samples, 3 classes, smoothing 0.1",
        (logits, target, 0.1),
        points=0.5,
        visibility="visible",
    )
    logits, target = _logits(SEEDS[0], 16, 10)
    ex.compare("no smoothing is plain cross-entropy", (logits, target, 0.0), points=0.5)
    logits, target = _logits(SEEDS[1], 32, 7)
    ex.compare("smoothing 0.3, 7 classes", (logits, target, 0.3), points=0.5)
    logits, target = _logits(SEEDS[2], 1, 5)
    ex.compare("batch of one", (logits, target, 0.2), points=0.5)
    logits, target = _logits(SEEDS[0] + 100, 8, 4, scale=200.0)
    ex.compare(
        "extreme logits stay finite", (logits, target, 0.1), points=0.5, visibility="after_due"
    )
    logits, target = _logits(SEEDS[1] + 100, 64, 100)
    ex.compare("many classes, strong smoothing", (logits, target, 0.9), points=0.25)
    logits, target = _logits(SEEDS[2] + 100, 32, 6, scale=120.0)
    ex.compare("large logits in a larger batch, smoothing 0.2", (logits, target, 0.2), points=0.25)


@suite.exercise("early_stopping_epoch")
def _early_stopping(ex: ExerciseBuilder) -> None:
    ex.contract(exact_types=True)  # "-> int": a Python int, not 3.0 nor a tensor
    ex.compare(
        "example: stops after patience",
        ([1.0, 0.8, 0.9, 0.85, 0.95], 2),
        points=0.25,
        visibility="visible",
    )
    ex.compare("a plateau of equal losses stops after patience", ([0.5] * 6, 3), points=0.25)
    ex.compare("never stops", ([5.0, 4.0, 3.0, 2.0, 1.0], 2), points=0.25)
    ex.compare("a tie is not an improvement", ([1.0, 1.0, 1.0, 0.5], 2), points=0.25)
    ex.compare(
        "min_delta", ([1.0, 0.95, 0.92, 0.91, 0.5], 3), kwargs={"min_delta": 0.1}, points=0.25
    )
    ex.compare("patience 1", ([0.5, 0.6, 0.4], 1), points=0.125)
    ex.compare("a single epoch", ([0.3], 3), points=0.125)
    ex.compare("no epochs at all", ([], 2), points=0.25, visibility="after_due")
    g = torch.Generator().manual_seed(SEEDS[2])
    noisy = (torch.linspace(2.0, 0.5, 40) + 0.2 * torch.rand(40, generator=g)).tolist()
    ex.compare("a noisy curve", (noisy, 4), kwargs={"min_delta": 0.01}, points=0.25)


# -- digits-classifier: a model file, scored on the perturbed held-out digits -------------

CLASSES = 10
#: The course's rule, calibrated on the perturbed held-out digits: no points at 0.80
#: accuracy or below, all points at 0.92 or above. The reference recipe (a DigitsMLP
#: trained on perturbed copies of the public split) reaches about 0.96; a lookup table
#: of all 1,797 public images (1-nearest neighbour) about 0.79, and 1.0 on the
#: unperturbed images, which is why those are never used.
LOW, HIGH = 0.80, 0.92
SMALL_BATCHES = (1, 7)
#: The seed of the perturbation of the held-out digits. Secret: it lives here, with the
#: hidden tests, which the sandbox never sees (it imports public/ only). Without it the
#: evaluation images cannot be rebuilt from scikit-learn's public digits.
PERTURBATION_SEED = 0x2F6B_91C4_D37A_0E58


def held_out_originals() -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of scikit-learn's digits not in the public split (public data!)."""
    from hw1_helpers import load_digits_arrays, public_indices

    inputs, labels = load_digits_arrays()
    public = set(public_indices().tolist())
    index = [i for i in range(len(labels)) if i not in public]
    if not index or len(index) + len(public) != len(labels):
        raise RuntimeError("the public split of hw1_helpers is not a subset of the digits")
    return torch.from_numpy(inputs[index]), torch.from_numpy(labels[index])


@lru_cache(maxsize=1)
def held_out() -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation digits: the held-out images, perturbed from the secret seed.

    hw1_helpers.perturb_digits (the perturbation the students are told about, in words
    and as code) with PERTURBATION_SEED. Only the inputs are ever sent to the sandbox;
    the labels stay here.
    """
    from hw1_helpers import perturb_digits

    inputs, labels = held_out_originals()
    generator = torch.Generator().manual_seed(PERTURBATION_SEED)
    return perturb_digits(inputs, generator).contiguous(), labels


def _held_out_answer(student: Student) -> tuple[object, float]:
    """The model's raw answer on the held-out inputs (once per submission) and its time."""

    def run() -> tuple[object, float]:
        inputs, _ = held_out()
        model_handle(student)  # loading is not part of the inference time
        started = time.perf_counter()
        answer = predict(student, inputs)
        return answer, time.perf_counter() - started

    return cached(student, "held-out answer", run)


def _accuracy(student: Student) -> tuple[float, torch.Tensor, torch.Tensor]:
    inputs, labels = held_out()
    answer, _ = _held_out_answer(student)
    try:
        logits = check_logits(answer, len(inputs), CLASSES)
    except Fail as fail:
        raise Fail(f"no accuracy can be computed: {fail.message}") from None
    predicted = logits.argmax(dim=1)
    return float((predicted == labels).double().mean()), labels, predicted


@suite.exercise("digits-classifier")
def _digits_classifier(ex: ExerciseBuilder) -> None:
    @ex.check("loads and returns [N, 10] float32 logits", points=0.5, visibility="visible")
    def _output_format(student: Student) -> Verdict:
        inputs, _ = held_out()
        answer, seconds = _held_out_answer(student)
        logits = check_logits(answer, len(inputs), CLASSES)
        if logits.dtype != torch.float32:
            raise Fail(
                f"the logits are {logits.dtype}; expected torch.float32 (convert the "
                "model with model.float() before saving it)"
            )
        for n in SMALL_BATCHES:
            try:
                small = check_logits(predict(student, inputs[:n]), n, CLASSES)
            except Fail as fail:
                raise Fail(f"on a batch of {n}: {fail.message}") from None
            if not torch.allclose(small.float(), logits[:n], rtol=1e-3, atol=1e-4):
                raise Fail(
                    f"the logits of an input change with the batch it comes in (batch of {n} "
                    f"against batch of {len(inputs)}); was the model saved in training mode "
                    "(batch norm, dropout)? Call model.eval() before exporting it"
                )
        accuracy, _, _ = _accuracy(student)
        fraction = scaled_fraction(accuracy, LOW, HIGH)
        sizes = ", ".join(str(n) for n in SMALL_BATCHES)
        return Verdict(
            True,
            f"the model answers batches of {sizes} and {len(inputs)} inputs with float32 "
            f"logits [N, {CLASSES}]; inference on {len(inputs)} digits took "
            f"{seconds * 1000:.0f} ms. Like all points of this exercise, this test's points "
            f"scale with the held-out accuracy: {fraction:.0%} of them",
            fraction=fraction,
        )

    @ex.check("held-out accuracy", points=4.5, visibility="visible")
    def _held_out_accuracy(student: Student) -> Verdict:
        accuracy, labels, predicted = _accuracy(student)
        fraction = scaled_fraction(accuracy, LOW, HIGH)
        right = int((predicted == labels).sum())
        # The table goes in the message: students see it whether or not the test passed.
        return Verdict(
            fraction >= 1.0,
            f"accuracy {accuracy:.4f} on the {len(labels)} perturbed held-out digits "
            f"({right} right): "
            f"{fraction:.0%} of the points (0 at {LOW:.2f} or below, all at {HIGH:.2f} or "
            "above, linear in between)\n" + accuracy_report(labels, predicted, CLASSES),
            fraction=fraction,
        )

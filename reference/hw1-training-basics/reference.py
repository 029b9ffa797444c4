"""Reference implementations of hw1 (hidden from students)."""

import torch


def label_smoothing_ce(
    logits: torch.Tensor, target: torch.Tensor, smoothing: float
) -> torch.Tensor:
    n, c = logits.shape
    log_probs = torch.log_softmax(logits, dim=1)
    q = torch.full_like(log_probs, smoothing / c)
    q[torch.arange(n), target] += 1.0 - smoothing
    return -(q * log_probs).sum(dim=1).mean()


def early_stopping_epoch(val_losses: list[float], patience: int, min_delta: float = 0.0) -> int:
    best = float("inf")
    wait = 0
    for epoch, loss in enumerate(val_losses):
        if loss < best - min_delta:
            best = loss
            wait = 0
        else:
            wait += 1
            if wait >= patience:
                return epoch
    return len(val_losses) - 1


def train_digits_mlp(seed: int = 0, epochs: int = 60) -> torch.nn.Module:
    """The reference recipe for `digits-classifier`: a DigitsMLP trained on the public split.

    The grader scores on perturbed held-out digits (hw1_helpers.perturb_digits with a
    secret seed), so each epoch trains on a fresh perturbed copy of the public split.
    AdamW with a one-cycle schedule, label smoothing 0.1, batches of 32: about 0.96
    accuracy on the perturbed held-out digits, in two seconds or so on one CPU core.
    Deterministic for a given seed (on one thread).
    """
    from hw1_helpers import DigitsMLP, load_public_split, perturb_digits

    inputs, labels = load_public_split()
    torch.manual_seed(seed)
    model = DigitsMLP()
    batch = 32
    lr = 1e-2
    steps_per_epoch = (len(inputs) + batch - 1) // batch
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch
    )
    order = torch.Generator().manual_seed(seed)
    augment = torch.Generator().manual_seed(seed + 1)
    model.train()
    for _ in range(epochs):
        perturbed = perturb_digits(inputs, augment)
        permutation = torch.randperm(len(inputs), generator=order)
        for start in range(0, len(inputs), batch):
            index = permutation[start : start + batch]
            loss = torch.nn.functional.cross_entropy(
                model(perturbed[index]), labels[index], label_smoothing=0.1
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()

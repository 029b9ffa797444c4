# Classic mistake: mixes in place, overwriting the caller's batch.
def mixup(x, y, lam, perm):
    x_perm, y_perm = x[perm], y[perm]
    x_mix = x.mul_(lam).add_((1 - lam) * x_perm)
    y_mix = y.mul_(lam).add_((1 - lam) * y_perm)
    return x_mix, y_mix

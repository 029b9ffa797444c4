# Classic mistake: lam weights the permuted batch instead of the original one.
def mixup(x, y, lam, perm):
    x_mix = (1 - lam) * x + lam * x[perm]
    y_mix = (1 - lam) * y + lam * y[perm]
    return x_mix, y_mix

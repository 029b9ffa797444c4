# Classic mistake: mixes the inputs but keeps the original labels.
def mixup(x, y, lam, perm):
    x_mix = lam * x + (1 - lam) * x[perm]
    return x_mix, y

# Classic mistake: wrong power of dx (divides by dx, not dx^2).
def laplacian_1d(u, dx):
    return (u[2:] - 2 * u[1:-1] + u[:-2]) / dx

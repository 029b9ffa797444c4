# Classic mistake: np.floor of a true division gives the right numbers as floats: (26.0, 26.0)
# is not a tuple of Python ints.
import numpy as np


def conv2d_output_shape(h, w, kernel, stride=1, padding=0, dilation=1):
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    k, s, p, d = pair(kernel), pair(stride), pair(padding), pair(dilation)
    return tuple(np.floor((n + 2 * p[i] - d[i] * (k[i] - 1) - 1) / s[i]) + 1
                 for i, n in enumerate((h, w)))

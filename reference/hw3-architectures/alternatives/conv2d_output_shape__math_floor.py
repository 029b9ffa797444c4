# Correct, written differently: math.floor on a float division, numpy-free pair handling.
import math


def conv2d_output_shape(h, w, kernel, stride=1, padding=0, dilation=1):
    def get(v, i):
        return v if isinstance(v, int) else v[i]

    result = []
    for i, size in enumerate([h, w]):
        k, s, p, d = get(kernel, i), get(stride, i), get(padding, i), get(dilation, i)
        result.append(int(math.floor((size + 2 * p - d * (k - 1) - 1) / s + 1)))
    return result[0], result[1]

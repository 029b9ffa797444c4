# Classic mistake: true division without floor, so the shape can be a fraction.
def conv2d_output_shape(h, w, kernel, stride=1, padding=0, dilation=1):
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    k, s, p, d = pair(kernel), pair(stride), pair(padding), pair(dilation)
    return tuple((n + 2 * p[i] - d[i] * (k[i] - 1) - 1) / s[i] + 1 for i, n in enumerate((h, w)))

# Classic mistake: ignores the dilation (uses the kernel size as is).
def conv2d_output_shape(h, w, kernel, stride=1, padding=0, dilation=1):
    def pair(v):
        return (v, v) if isinstance(v, int) else tuple(v)

    k, s, p = pair(kernel), pair(stride), pair(padding)
    return ((h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1)

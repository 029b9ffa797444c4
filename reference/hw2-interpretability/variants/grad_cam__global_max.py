# Classic mistake: normalises by the maximum over the whole batch, not per map.
import torch
import torch.nn.functional as F


def grad_cam(model, x, target, layer):
    store = {}
    handle = model.get_submodule(layer).register_forward_hook(
        lambda m, i, o: store.__setitem__("A", o))
    logits = model(x)
    handle.remove()
    A = store["A"]
    (G,) = torch.autograd.grad(logits[torch.arange(len(x)), target].sum(), A)
    cam = torch.relu((G.mean(dim=(2, 3), keepdim=True) * A).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).detach()

# Classic mistake: divides by the maximum of the small map, then upsamples.
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
    peak = cam.amax(dim=(2, 3), keepdim=True)
    cam = torch.where(peak > 0, cam / peak.clamp_min(1e-30), cam)
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear",
                         align_corners=False)[:, 0].detach()

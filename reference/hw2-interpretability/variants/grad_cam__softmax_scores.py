# Classic mistake: differentiates the softmax probability of the target, not its logit.
import torch
import torch.nn.functional as F


def grad_cam(model, x, target, layer):
    store = {}
    handle = model.get_submodule(layer).register_forward_hook(
        lambda m, i, o: store.__setitem__("A", o))
    probs = model(x).softmax(dim=1)
    handle.remove()
    A = store["A"]
    (G,) = torch.autograd.grad(probs[torch.arange(len(x)), target].sum(), A)
    cam = torch.relu((G.mean(dim=(2, 3), keepdim=True) * A).sum(dim=1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(1e-30), cam).detach()

"""Where a network looks: guided backprop, Grad-CAM, the entropy zoom crop, and scores against ground truth.

Guided backpropagation (Springenberg et al., 2015) and Grad-CAM (Selvaraju et al., 2017) come from
captum. Two captum traps are handled here:

* `GuidedBackprop` overrides the backward of `nn.ReLU` *modules* (not `F.relu`), and its hooks expect
  each module to be called once per forward. torchvision's ResNet blocks call one `self.relu` two or
  three times, so attribution runs on `relu_safe_copy(model)`: a copy whose every ReLU call has its own
  non-inplace module (torchvision blocks are converted; anything still reusing a ReLU is refused by name).
* `LayerGradCam` needs ``relu_attributions=True`` and returns a map at the layer's resolution:
  `grad_cam` interpolates it to the image size.

The entropy zoom: classify the image shrunk to the
network input; guided backprop on the eq.-(1)-normalised input; local entropy of the response; a
quantile threshold picks a region; its box, mapped back to the full-resolution image and extended to
at least the input size (the whole axis when the image is smaller), is cropped and classified again;
`steps` > 1 repeats this inside the previous crop.

Boxes are ``(x0, y0, x1, y1)`` in pixels, half-open, as in `medvid_core.synth.radiograph`'s ground truth.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam
from scipy import ndimage
from skimage.filters.rank import entropy as rank_entropy
from skimage.morphology import disk
from torchvision.models import resnet as tv_resnet

from medvid_core.models import resnet2d

Box = tuple[int, int, int, int]

# ------------------------------------------------------------------ normalisation and ReLU-safe copies


def gbp_normalize(x: torch.Tensor) -> torch.Tensor:
    """Eq. (1): ``0.5 + 0.5 * (x - mean(x)) / std(x)`` per sample (over channels and pixels).

    std is the population one (eq. 3); a constant sample maps to 0.5 everywhere.
    """
    dims = tuple(range(1, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, correction=0)
    return 0.5 + 0.5 * (x - mean) / std.clamp_min(1e-8)


def relu_safe_copy(model: nn.Module) -> nn.Module:
    """An eval-mode deep copy in which every ReLU is a separate, non-inplace `nn.ReLU`.

    torchvision `BasicBlock`/`Bottleneck` (one `self.relu` called 2-3 times) become the
    separate-ReLU blocks of `medvid_core.models.resnet2d` (same parameters). Other reuse cannot
    be fixed generically: `check_relus_called_once` finds it.
    """
    safe = copy.deepcopy(model).eval()
    for module in safe.modules():
        for cls, new, names in ((tv_resnet.Bottleneck, resnet2d.Bottleneck, ("relu1", "relu2", "relu3")),
                                (tv_resnet.BasicBlock, resnet2d.BasicBlock, ("relu1", "relu2"))):
            if type(module) is cls:
                del module.relu
                for name in names:
                    setattr(module, name, nn.ReLU())
                module.__class__ = new
        if isinstance(module, nn.ReLU):
            module.inplace = False
    return safe


def check_relus_called_once(model: nn.Module, x: torch.Tensor) -> None:
    """Raise ValueError naming every `nn.ReLU` module that one forward pass calls more than once."""
    calls: dict[str, int] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
             for name, m in model.named_modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in hooks:
            h.remove()
    reused = [f"{n} ({c} calls)" for n, c in calls.items() if c > 1]
    if reused:
        raise ValueError("guided backprop needs each nn.ReLU called once per forward; reused: " + ", ".join(reused))


def _targets(model: nn.Module, x: torch.Tensor, target) -> torch.Tensor | int:
    if target is not None:
        return target
    with torch.no_grad():
        return model(x).argmax(dim=1)


def guided_backprop(model: nn.Module, x: torch.Tensor, target=None, *, safe: bool = True) -> torch.Tensor:
    """Guided-backprop attribution (captum), same shape as `x`.

    `target`: class index (int or one per sample); None = each sample's predicted class.
    `safe=True` attributes on `relu_safe_copy(model)` after checking every ReLU is called once;
    pass ``safe=False`` with a model that is already such a copy (e.g. inside a loop).
    """
    net = relu_safe_copy(model) if safe else model
    if safe:
        check_relus_called_once(net, x)
    return _gbp(net, x, _targets(net, x, target))


def _gbp(net: nn.Module, x: torch.Tensor, target) -> torch.Tensor:
    with warnings.catch_warnings():  # captum announces its ReLU hooks on every call
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
        return GuidedBackprop(net).attribute(x.detach().clone().requires_grad_(True), target=target)


def plain_gradient(model: nn.Module, x: torch.Tensor, target=None) -> torch.Tensor:
    """d output[target] / d input, for comparison with guided backprop."""
    model = model.eval()
    x = x.detach().clone().requires_grad_(True)
    target = _targets(model, x, target)
    out = model(x)
    idx = torch.as_tensor(target).expand(len(x)) if not torch.is_tensor(target) or target.ndim == 0 else target
    out.gather(1, idx.view(-1, 1)).sum().backward()
    return x.grad


def grad_cam(model: nn.Module, layer: nn.Module, x: torch.Tensor, target=None) -> torch.Tensor:
    """Grad-CAM (captum `LayerGradCam`, ``relu_attributions=True``) bilinearly interpolated to x's size: (N, H, W)."""
    model = model.eval()
    cam = LayerGradCam(model, layer).attribute(x, target=_targets(model, x, target), relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return cam[:, 0].detach()


def response_map(attribution: torch.Tensor) -> np.ndarray:
    """|attribution| max over channels, scaled to [0, 1] per sample: (N, H, W) float32."""
    a = attribution.detach().abs().amax(dim=1).cpu().numpy().astype(np.float32)
    peak = a.reshape(len(a), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, a / np.maximum(peak, 1e-12), 0).astype(np.float32)


# ------------------------------------------------------------------ entropy, region, crop box


def local_entropy(response: np.ndarray, radius: int = 5) -> np.ndarray:
    """Local Shannon entropy in bits (eq. 5, scikit-image rank entropy over a disk) of a map in [0, 1]."""
    u8 = np.round(np.clip(response, 0, 1) * 255).astype(np.uint8)
    return rank_entropy(u8, disk(radius)).astype(np.float32)


def entropy_region(ent: np.ndarray, quantile: float = 0.9) -> Box:
    """Box (map pixels) of the largest connected region whose entropy is at or above its `quantile`.

    A flat map (no structure) gives the whole map.
    """
    h, w = ent.shape
    if ent.max() <= ent.min():
        return 0, 0, w, h
    mask = ent >= np.quantile(ent, quantile)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
        mask = labels == 1 + int(np.argmax(sizes))
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def crop_box(region: Box, map_shape: tuple[int, int], image_shape: tuple[int, int], min_size: int,
             *, origin: tuple[int, int] = (0, 0), within: tuple[int, int] | None = None) -> Box:
    """Map a region of an (h, w) map onto an image region, extended to at least `min_size` pixels a side.

    The region is scaled from `map_shape` to `image_shape` (the size of the image the map was
    computed on) and shifted by `origin` (where that image sits in the full-resolution one).
    It then grows about its centre to `min_size` (the network input), is shifted to lie inside the
    full image of size `within` (default `image_shape`), and covers a whole axis when that axis is
    shorter than `min_size`. Returns (x0, y0, x1, y1) in full-image pixels.
    """
    mh, mw = map_shape
    ih, iw = image_shape
    fh, fw = within if within is not None else image_shape
    sx, sy = iw / mw, ih / mh
    x0, y0, x1, y1 = region
    box = [origin[0] + x0 * sx, origin[1] + y0 * sy, origin[0] + x1 * sx, origin[1] + y1 * sy]
    out = []
    for lo, hi, size in ((box[0], box[2], fw), (box[1], box[3], fh)):
        if size <= min_size:
            out.append((0, size))
            continue
        length = max(hi - lo, min_size)
        start = (lo + hi) / 2 - length / 2
        start = min(max(start, 0), size - length)
        a = int(np.floor(start))
        out.append((a, min(size, max(a + min_size, int(np.ceil(start + length))))))
    (x0, x1), (y0, y1) = out
    return x0, y0, x1, y1


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """A 2D float image to size x size (area interpolation when shrinking, as for display)."""
    interp = cv2.INTER_AREA if min(image.shape) > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image, dtype=np.float32), (size, size), interpolation=interp)


# ------------------------------------------------------------------ the zoom


def zoom(model: nn.Module, images: Sequence[np.ndarray], *, input_size: int, steps: int = 1,
         normalize: Callable[[torch.Tensor], torch.Tensor] | None = None, target=None,
         entropy_radius: int = 5, quantile: float = 0.9, batch_size: int = 32, keep_maps: bool = False) -> dict:
    """Recurrent entropy zoom over full-resolution 2D images (each (H, W) float in [0, 1]).

    Step 0 classifies every image shrunk to `input_size`; each of `steps` further steps takes guided
    backprop (on the eq.-(1)-normalised input, w.r.t. `target` or the predicted class), its local
    entropy, the entropy region and its crop box in the full image (inside the previous crop's
    neighbourhood: the new box is mapped from the previous crop), and classifies that crop.
    `normalize` turns a (N, 1, s, s) batch in [0, 1] into the classifier's input (default: as is).

    Returns ``probs`` (steps + 1, N, classes), ``boxes`` (steps, N, 4) and, with `keep_maps`,
    ``response`` / ``entropy`` (steps, N, s, s) from the maps each crop was chosen on.
    """
    normalize = normalize or (lambda t: t)
    net = relu_safe_copy(model)
    device = next(net.parameters()).device
    boxes = [(0, 0, im.shape[1], im.shape[0]) for im in images]
    probs, all_boxes, responses, entropies = [], [], [], []
    for step in range(steps + 1):
        batch = torch.from_numpy(np.stack([resize(crop(im, b), input_size) for im, b in zip(images, boxes)]))[:, None]
        out, attr = [], []
        for i in range(0, len(batch), batch_size):
            chunk = batch[i:i + batch_size].to(device)
            with torch.no_grad():
                p = F.softmax(net(normalize(chunk)), dim=1)
            out.append(p.cpu())
            if step < steps:
                tgt = p.argmax(1) if target is None else target
                attr.append(_gbp(net, gbp_normalize(chunk), tgt).cpu())
        probs.append(torch.cat(out).numpy())
        if step == steps:
            break
        resp = response_map(torch.cat(attr))
        ents = np.stack([local_entropy(r, entropy_radius) for r in resp])
        new = []
        for im, b, e in zip(images, boxes, ents):
            region = entropy_region(e, quantile)
            new.append(crop_box(region, e.shape, (b[3] - b[1], b[2] - b[0]), input_size,
                                origin=(b[0], b[1]), within=im.shape))
        boxes = new
        all_boxes.append(np.array(boxes))
        if keep_maps:
            responses.append(resp)
            entropies.append(ents)
    result = dict(probs=np.stack(probs), boxes=np.stack(all_boxes) if all_boxes else np.zeros((0, len(images), 4)))
    if keep_maps:
        result.update(response=np.stack(responses), entropy=np.stack(entropies))
    return result


# ------------------------------------------------------------------ scoring against ground truth


def box_iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_coverage(crop_: Box, box: Box) -> float:
    """Fraction of `box`'s area that lies inside `crop_`."""
    ix = max(0, min(crop_[2], box[2]) - max(crop_[0], box[0]))
    iy = max(0, min(crop_[3], box[3]) - max(crop_[1], box[1]))
    area = (box[2] - box[0]) * (box[3] - box[1])
    return ix * iy / area if area > 0 else 0.0


def score_crop(crop_: Box, abnormalities: Sequence[Box], flags: Sequence[Box], *, min_cover: float = 0.5) -> dict:
    """How a crop relates to the ground truth of its image.

    iou: best IoU with an abnormality box (NaN without one); contains_abnormality: at least
    `min_cover` of an abnormality box inside the crop (NaN without one); on_flag: at least
    `min_cover` of a flag box inside the crop; crop_fraction is added by `score_crops`.
    """
    nan = float("nan")
    return dict(
        iou=max((box_iou(crop_, b) for b in abnormalities), default=nan),
        contains_abnormality=float(any(box_coverage(crop_, b) >= min_cover for b in abnormalities))
        if len(abnormalities) else nan,
        on_flag=float(any(box_coverage(crop_, b) >= min_cover for b in flags)),
    )


def empty_map(saliency: np.ndarray) -> bool:
    """True for a map with nothing to point at: constant everywhere (all zeros included)."""
    return bool(np.ptp(saliency) == 0)


def _box_mask(shape: tuple[int, int], boxes: Sequence[Box], map_to_image: tuple[float, float]) -> np.ndarray:
    """The map pixels (h, w) that the union of `boxes` (image pixels) touches."""
    h, w = shape
    mask = np.zeros((h, w), bool)
    sx, sy = map_to_image
    for x0, y0, x1, y1 in boxes:
        mask[int(np.floor(y0 / sy)):int(np.ceil(y1 / sy)), int(np.floor(x0 / sx)):int(np.ceil(x1 / sx))] = True
    return mask


def map_mass(saliency: np.ndarray, boxes: Sequence[Box], *, map_to_image: tuple[float, float] = (1.0, 1.0)) -> float:
    """Fraction of a non-negative map's total inside the union of `boxes` (image pixels; the map is
    (h, w) and `map_to_image` = (sx, sy) scales map pixels to image pixels). NaN without boxes, and NaN for
    a constant map, all zero (e.g. a Grad-CAM whose weighted channels are all negative) or not: it points
    nowhere, which is counted (`empty_map`) and reported, not scored (as 0, or as the boxes' area share).
    The area share, the score of a map that ignores the image, is `area_fraction`."""
    if not len(boxes) or empty_map(saliency):
        return float("nan")
    mask = _box_mask(saliency.shape, boxes, map_to_image)
    total = float(saliency.sum())
    return float(saliency[mask].sum()) / total if total > 0 else float("nan")


def area_fraction(map_shape: tuple[int, int], boxes: Sequence[Box], *,
                  map_to_image: tuple[float, float] = (1.0, 1.0)) -> float:
    """The share of an (h, w) map's pixels inside the union of `boxes` (image pixels): what `map_mass`
    would give a uniform map, the chance level of a map that ignores the image. NaN without boxes."""
    if not len(boxes):
        return float("nan")
    mask = _box_mask(tuple(map_shape), boxes, map_to_image)
    return float(mask.sum()) / float(mask.size)


def pointing_hit(saliency: np.ndarray, boxes: Sequence[Box], *, map_to_image: tuple[float, float] = (1.0, 1.0)) -> float:
    """1.0 when the map's maximum falls inside one of `boxes` (image pixels), else 0.0; NaN without boxes
    and for a constant map, which has no maximum to point with (argmax would say its first pixel)."""
    if not len(boxes) or empty_map(saliency):
        return float("nan")
    y, x = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    px, py = (x + 0.5) * map_to_image[0], (y + 0.5) * map_to_image[1]
    return float(any(x0 <= px < x1 and y0 <= py < y1 for x0, y0, x1, y1 in boxes))

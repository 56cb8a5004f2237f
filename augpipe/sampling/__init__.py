"""Per-sample random parameters, drawn as `[N, ...]` tensors from an explicit generator.

Nothing here touches pixels: kernels (`augpipe.functional`) are pure functions of images and the
parameters drawn here. Every function draws on the generator's device (so the same seed gives the
same parameters on that device) and returns tensors on `device`.

Distributions follow torchvision.transforms.v2 so that one policy means the same thing everywhere:
- crop boxes: `RandomResizedCrop.get_params` (10 tries of area ~ U(scale), log-ratio ~ U(log ratio),
  first fitting box wins, else the central fallback), vectorised over the batch;
- jitter factors: brightness/contrast/saturation ~ U(max(0, 1-s), 1+s), hue ~ U(-h, h), and a random
  order of the four per sample (torchvision draws one order per call; we draw one per sample).

Two modules: `_distributions` (the draws every sampler is made of: `uniform`, `bernoulli`,
`normal`, `permutations`, public for users' ops) and `_geometry` (the per-op draws of the built-in
geometric ops).
"""
from augpipe.sampling._distributions import bernoulli, normal, permutations, uniform
from augpipe.sampling._geometry import (affine_params, crop_offsets, erasing_boxes, fallback_box, full_boxes,
                                        perspective_coeffs, perspective_corners, resized_crop_boxes)

__all__ = ["affine_params", "bernoulli", "crop_offsets", "erasing_boxes", "fallback_box", "full_boxes", "normal",
           "permutations", "perspective_coeffs", "perspective_corners", "resized_crop_boxes", "uniform"]

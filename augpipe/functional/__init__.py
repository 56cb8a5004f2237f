"""Pure batched kernels: `(images, per-sample params) -> images`, no randomness inside.

Images are float `[N, 3, H, W]` in [0, 1]; every parameter is a tensor with a leading `N`, so each
sample gets its own value in one batched call (no Python loop over samples). Each kernel states the
`torchvision.transforms.v2.functional` call it reproduces; tests feed the same parameters to both
(`tests/augpipe/functional/`). By kind, as torchvision's `functional/`: `_geometry`, `_color`,
`_misc`, `_augment`; `_targets` moves masks, boxes and keypoints; `_rows` holds the CPU path's row loops, which read parameters on the host.

Why our own kernels instead of Kornia's modules: Kornia routes crops through a perspective warp
(a 3x3 matrix per sample, `warp_perspective`), hue through a full HSV round trip with many
temporaries, and wraps every op in parameter bookkeeping. The versions here are a single
`grid_sample` for crops, a branch-free hue rotation, and a grouped convolution for per-sample blur.
"""
from augpipe.functional._augment import erase
from augpipe.functional._color import (adjust_brightness, adjust_contrast, adjust_saturation, adjust_sharpness,
                                       autocontrast, color_jitter, equalize, grayscale, hue, invert, permute_channels,
                                       posterize, solarize)
from augpipe.functional._geometry import (PAD_MODES, affine, crop, hflip, inverse_affine_matrix, pad, perspective,
                                          resized_crop, vflip)
from augpipe.functional._misc import gaussian_blur, gaussian_kernels, gaussian_noise, normalize
from augpipe.functional._rows import ROW_LOOP_MIN_PIXELS, crop_rows, erase_rows, loops_pay, put, take
from augpipe.functional._targets import (BOX_FORMATS, affine_points, box_corners, boxes_to_xyxy, envelope, flip_points,
                                         perspective_points, resized_crop_masks, resized_crop_points, shift_points,
                                         xyxy_to_boxes)

__all__ = ["BOX_FORMATS", "PAD_MODES", "ROW_LOOP_MIN_PIXELS", "affine_points", "box_corners", "boxes_to_xyxy",
           "envelope", "flip_points", "perspective_points", "resized_crop_masks", "resized_crop_points", "shift_points", "xyxy_to_boxes", "adjust_brightness", "adjust_contrast", "adjust_saturation",
           "adjust_sharpness", "affine", "autocontrast", "color_jitter", "crop", "crop_rows", "equalize", "erase",
           "erase_rows", "gaussian_blur", "gaussian_kernels", "gaussian_noise", "grayscale", "hflip", "hue",
           "inverse_affine_matrix", "invert", "loops_pay", "normalize", "pad", "permute_channels", "perspective",
           "posterize", "put", "resized_crop", "solarize", "take", "vflip"]

"""Masks, boxes and keypoints through a view's ops: each geometric op moves them with the same
per-sample parameters as the images (`Op.move_points`, `Op.move_masks`), a gated op only on the
rows its coin selected (`torch.where`: no host read), photometric ops leave them."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from augpipe import functional
from augpipe.ops import ApplyContext, Op


@dataclass
class Targets:
    """What travels with one view's images; each field None where it was not given.

    masks:     as given (`[N, H, W]` or `[N, K, H, W]`, any dtype), at the view's size
    boxes:     `[N, M, 4]` in the given format, clamped to the view (as torchvision clamps)
    box_valid: `[N, M]` bool: given valid and at least 1 px wide and high in the view (the
               boxes torchvision's `SanitizeBoundingBoxes` keeps)
    keypoints: `[N, M, 2]` (x, y), not clamped (as torchvision's KeyPoints)
    """
    masks: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    box_valid: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None


def check_targets(n: int, in_size, masks, boxes, box_format: str, box_valid, keypoints) -> None:
    """One clear line for targets that do not fit the batch."""
    if box_format not in functional.BOX_FORMATS:
        raise ValueError(f"box_format must be one of {', '.join(functional.BOX_FORMATS)}, got {box_format!r}")
    if masks is not None and (masks.dim() not in (3, 4) or masks.shape[0] != n or tuple(masks.shape[-2:]) != in_size):
        raise ValueError(f"masks must be [N, H, W] or [N, K, H, W] matching the images ({n} x {in_size}), "
                         f"got {tuple(masks.shape)}")
    for name, t, last in (("boxes", boxes, 4), ("keypoints", keypoints, 2)):
        if t is not None and (t.dim() != 3 or t.shape[0] != n or t.shape[2] != last or not t.is_floating_point()):
            raise ValueError(f"{name} must be a float tensor [N, M, {last}] with N = {n}, got "
                             f"{tuple(t.shape)} {t.dtype}")
    if box_valid is not None and (boxes is None or tuple(box_valid.shape) != tuple(boxes.shape[:2])
                                  or box_valid.dtype != torch.bool):
        raise ValueError(f"box_valid must be a bool tensor [N, M] matching boxes, got {tuple(box_valid.shape)} "
                         f"{box_valid.dtype}")


def _keep(op: Op, params: dict, moved: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """A gated op's result on the rows its coin selected, the input elsewhere."""
    if not op.gated or op.p >= 1.0:
        return moved
    mask = params["apply"].view(-1, *[1] * (moved.dim() - 1))
    return torch.where(mask, moved, before)


def move_targets(ops: list[Op], params: list[dict], sizes: list[tuple[int, int]], in_size: tuple[int, int],
                 masks=None, boxes=None, box_format: str = "xyxy", box_valid=None, keypoints=None) -> Targets:
    """The view's targets: `ops` with their `params` (one dict per op), `sizes` each op's out size."""
    hw = tuple(in_size)
    plain = masks is not None and masks.dim() == 3
    m = None if masks is None else (masks.unsqueeze(1) if plain else masks).to(torch.float32)
    xyxy = None if boxes is None else functional.boxes_to_xyxy(boxes, box_format)
    points = keypoints
    for op, p, out in zip(ops, params, sizes):
        if not (op.geometric or op.changes_size):
            continue  # photometric: nothing moves
        out = out if op.changes_size else hw
        if m is not None:
            m = _keep(op, p, op.move_masks(m, p, ApplyContext(out)), m)
        if points is not None:
            points = _keep(op, p, op.move_points(points, p, hw, out), points)
        if xyxy is not None:
            corners = op.move_points(functional.box_corners(xyxy), p, hw, out, corners=True)
            xyxy = _keep(op, p, functional.envelope(corners, out), xyxy)
        hw = out
    result = Targets(keypoints=points)
    if m is not None:
        m = m.round().to(masks.dtype) if not masks.is_floating_point() else m.to(masks.dtype)
        result.masks = m.squeeze(1) if plain else m
    if xyxy is not None:
        big = ((xyxy[..., 2] - xyxy[..., 0]) >= 1) & ((xyxy[..., 3] - xyxy[..., 1]) >= 1)
        result.boxes = functional.xyxy_to_boxes(xyxy, box_format)
        result.box_valid = big if box_valid is None else big & box_valid
    return result

"""Masks, boxes and keypoints follow every geometric op per sample: equal to torchvision's v2
kernels on `tv_tensors` replayed with each sample's parameters (boxes within 1e-4 of the image
size, masks exactly), gated ops only where their coin fell, no host sync on the blend path."""
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as TF

from augpipe import build_policy
from augpipe.diagnostics import count_ops
from augpipe.functional import boxes_to_xyxy, xyxy_to_boxes

SIDE = 48


@pytest.fixture
def targets(gen):
    """6 images' worth: 5 boxes each (XYXY, some near the borders), 7 keypoints, a 5-label mask."""
    n = 6
    xy = torch.rand(n, 5, 2, generator=gen) * (SIDE - 8)
    wh = 2 + torch.rand(n, 5, 2, generator=gen) * 20
    boxes = torch.cat([xy, (xy + wh).clamp(max=SIDE)], dim=-1)
    keypoints = torch.rand(n, 7, 2, generator=gen) * SIDE
    masks = torch.randint(0, 5, (n, SIDE // 4, SIDE // 4), generator=gen).repeat_interleave(4, 1).repeat_interleave(4, 2)
    return torch.rand(n, 3, SIDE, SIDE, generator=gen), boxes, keypoints, masks


def replay(op, p, i, t, out_size):
    """torchvision's functional op on one sample's tv_tensor `t`, with that sample's parameters."""
    name = op["op"]
    if name in ("rrc", "resize"):
        return TF.resized_crop(t, *op["boxes"][i].tolist(), list(out_size))
    if name in ("flip", "vflip") and not op["apply"][i]:
        return t
    if name == "flip":
        return TF.horizontal_flip(t)
    if name == "vflip":
        return TF.vertical_flip(t)
    if name == "rcrop":
        padded = TF.pad(t, [p.padding] * 4, fill=0)
        return TF.crop(padded, *op["offsets"][i].tolist(), *out_size)
    if name == "center_crop":
        return TF.center_crop(t, list(out_size))
    if name == "perspective":
        return TF.perspective(t, None, None, coefficients=op["coeffs"][i].tolist()) if op["apply"][i] else t
    if name in ("affine", "rotate"):
        if not op["apply"][i]:
            return t
        if name == "rotate":
            return TF.rotate(t, p.degrees[0])
        return TF.affine(t, angle=p.degrees[0], translate=[0.0, 0.0], scale=p.scale[0], shear=[p.shear_x[0], 0.0])
    return t  # photometric


CHAINS = ["rrc(scale=0.2:1)+flip+jitter", "resize+vflip(p=0.5)+gray", "rcrop(padding=6)+flip",
          "affine(degrees=30:30, scale=1.2:1.2, shear_x=10:10, p=0.5)+center_crop",
          "rotate(degrees=25:25, p=0.6)+flip+rrc(scale=0.3:1)", "perspective(distortion=0.5, p=0.7)+rrc"]


@pytest.mark.parametrize("spec", CHAINS)
@pytest.mark.parametrize("gating", ["subset", "blend"])
def test_targets_equal_torchvision_on_tv_tensors_per_sample(spec, gating, targets):
    images, boxes, keypoints, masks = targets
    size = (40, 40) if "center_crop" not in spec else (32, 32)
    policy = build_policy(spec, size=size, views=1, gating=gating)
    _, (moved,), (params,) = policy(images, generator=torch.Generator().manual_seed(3), return_params=True,
                                    masks=masks, boxes=boxes, keypoints=keypoints)
    ops = policy.views[0].ops
    for i in range(images.shape[0]):
        b = tv_tensors.BoundingBoxes(boxes[i], format="XYXY", canvas_size=(SIDE, SIDE))
        k = tv_tensors.KeyPoints(keypoints[i], canvas_size=(SIDE, SIDE))
        m = tv_tensors.Mask(masks[i])
        hw = (SIDE, SIDE)
        for op, p in zip(params, ops):
            out = size if p.changes_size else hw
            b, k, m = (replay(op, p, i, t, out) for t in (b, k, m))
            hw = out
        torch.testing.assert_close(moved.boxes[i], b.as_subclass(torch.Tensor), atol=1e-4 * SIDE, rtol=0)
        torch.testing.assert_close(moved.keypoints[i], k.as_subclass(torch.Tensor), atol=1e-4 * SIDE, rtol=0)
        assert torch.equal(moved.masks[i], m.as_subclass(torch.Tensor)), f"sample {i}"
        big = ((b[:, 2] - b[:, 0]) >= 1) & ((b[:, 3] - b[:, 1]) >= 1)
        assert torch.equal(moved.box_valid[i], big)


def test_box_formats_and_validity_round_trip(targets):
    images, boxes, _, _ = targets
    policy = build_policy("rrc(scale=0.1:0.3)+flip", size=24, views=2)
    valid = torch.rand(boxes.shape[:2], generator=torch.Generator().manual_seed(0)) < 0.7
    g = lambda: torch.Generator().manual_seed(4)
    _, xyxy = policy(images, generator=g(), boxes=boxes, box_valid=valid)
    for fmt in ("xywh", "cxcywh"):
        _, other = policy(images, generator=g(), boxes=xyxy_to_boxes(boxes, fmt), box_format=fmt, box_valid=valid)
        for a, b in zip(xyxy, other):
            torch.testing.assert_close(boxes_to_xyxy(b.boxes, fmt), a.boxes, atol=1e-4, rtol=0)
            assert torch.equal(a.box_valid, b.box_valid)
    assert all(not t.box_valid[~valid].any() for t in xyxy)  # invalid stays invalid
    assert any(not t.box_valid[valid].all() for t in xyxy)  # small crops leave boxes out


def test_targets_make_no_host_sync_with_blend_gating(targets):
    images, boxes, keypoints, masks = targets
    policy = build_policy("rrc+flip+jitter+gray+affine(degrees=-20:20, p=0.5)", size=32, views=2, gating="blend")
    counts = count_ops(lambda: policy(images, generator=torch.Generator().manual_seed(0), masks=masks, boxes=boxes,
                                      keypoints=keypoints))
    assert counts.syncs == {}


@pytest.mark.parametrize("spec, message", [
    ("trivial_augment", r"trivial_augment: masks, boxes and keypoints are not supported \(nor by torchvision's "
                        r"TrivialAugmentWide, RandAugment and AutoAugment\)"),
])
@pytest.mark.parametrize("kind", ["boxes", "masks", "keypoints"])
def test_ops_that_cannot_move_targets_say_so_in_one_line(spec, message, kind, targets):
    images, boxes, keypoints, masks = targets
    given = {"boxes": boxes, "masks": masks, "keypoints": keypoints}[kind]
    with pytest.raises(NotImplementedError, match=f"^{message}$"):
        build_policy(spec, size=SIDE, views=1)(images, **{kind: given})


def test_a_per_sample_choice_moves_targets_only_when_its_ops_are_photometric(targets):
    from torchvision.transforms import v2

    from augpipe import from_torchvision
    images, boxes, _, _ = targets
    photometric = from_torchvision(v2.RandomChoice([v2.RandomGrayscale(1.0), v2.RandomInvert(1.0)]))
    _, moved = photometric(images, boxes=boxes)
    assert torch.equal(moved.boxes, boxes)
    geometric = from_torchvision(v2.RandomChoice([v2.RandomHorizontalFlip(1.0), v2.RandomInvert(1.0)]))
    with pytest.raises(NotImplementedError, match=r"^one_of: moving masks, boxes or keypoints through a per-sample "
                                                  r"choice of geometric ops \(flip\) is not supported$"):
        geometric(images, boxes=boxes)


def test_bad_targets_are_named(targets):
    images, boxes, _, masks = targets
    policy = build_policy("rrc", size=24, views=1)
    with pytest.raises(ValueError, match=r"^masks must be \[N, H, W\] or \[N, K, H, W\] matching the images"):
        policy(images, masks=masks[:, :10])
    with pytest.raises(ValueError, match=r"^boxes must be a float tensor \[N, M, 4\] with N = 6, got \(6, 5, 3\)"):
        policy(images, boxes=boxes[..., :3])
    with pytest.raises(ValueError, match="^box_format must be one of xyxy, xywh, cxcywh, got 'xyhw'$"):
        policy(images, boxes=boxes, box_format="xyhw")


def test_a_converted_detection_pipeline_moves_boxes_as_torchvision_does(targets):
    """The drop-in: one view, `(images, Targets)`; a deterministic pipeline equals torchvision's
    own transforms on tv_tensors exactly."""
    from torchvision.transforms import v2

    from augpipe import from_torchvision
    images, boxes, keypoints, masks = targets
    pipeline = v2.Compose([v2.Resize(40), v2.CenterCrop(32), v2.RandomHorizontalFlip(p=1.0)])
    out, moved = from_torchvision(pipeline)(images, boxes=boxes, keypoints=keypoints, masks=masks)
    assert out.shape == (6, 3, 32, 32)
    for i in range(images.shape[0]):
        b, k, m = pipeline(tv_tensors.BoundingBoxes(boxes[i], format="XYXY", canvas_size=(SIDE, SIDE)),
                           tv_tensors.KeyPoints(keypoints[i], canvas_size=(SIDE, SIDE)), tv_tensors.Mask(masks[i]))
        torch.testing.assert_close(moved.boxes[i], b.as_subclass(torch.Tensor), atol=1e-4 * SIDE, rtol=0)
        torch.testing.assert_close(moved.keypoints[i], k.as_subclass(torch.Tensor), atol=1e-4 * SIDE, rtol=0)
        assert torch.equal(moved.masks[i], m.as_subclass(torch.Tensor))

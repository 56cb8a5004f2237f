"""Video clips `[N, T, C, H, W]`: every frame of a clip shares that clip's parameters, each clip
draws its own; per-pixel noise is drawn per frame (as torchvision's on a video tensor)."""
import pytest
import torch
from torchvision.transforms import v2

from augpipe import build_policy, from_torchvision
from augpipe.diagnostics import count_ops
from tests.tolerance import assert_float_close


@pytest.fixture
def clips(photo_batch):
    """8 clips of 4 frames: a photo drifting right by one pixel per frame."""
    frames = [photo_batch[:8, :, :32, t:t + 32] for t in range(4)]
    return torch.stack(frames, dim=1).contiguous()


@pytest.mark.parametrize("spec", ["simclr", "crop-gray", "trivialaugment", "rrc+affine(degrees=-30:30)+erasing(p=1)"])
@pytest.mark.parametrize("gating", ["subset", "blend"])
def test_each_frame_is_its_image_under_its_clips_parameters(spec, gating, clips):
    policy = build_policy(spec, size=24, views=2, gating=gating)
    views, params = policy(clips, generator=torch.Generator().manual_seed(0), return_params=True)
    assert [tuple(v.shape) for v in views] == [(8, 4, 3, 24, 24)] * 2
    for t in range(clips.shape[1]):
        for clip_view, frame_view in zip(views, policy.apply(clips[:, t].contiguous(), params)):
            assert_float_close(clip_view[:, t], frame_view)


def test_frames_of_a_clip_agree_and_clips_differ(clips):
    still = clips[:, :1].expand(-1, 4, -1, -1, -1).contiguous()  # every frame the same picture
    (view,) = build_policy("simclr", size=24, views=1)(still, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(view[:, 0], view[:, t]) for t in range(1, 4))
    same_photo = still[:1].expand(8, -1, -1, -1, -1).contiguous()  # one clip, eight times
    (view,) = build_policy("simclr", size=24, views=1)(same_photo, generator=torch.Generator().manual_seed(1))
    assert len({tuple(v[0].flatten()[:64].tolist()) for v in view}) == 8


def test_noise_differs_per_frame_and_its_strength_per_clip(clips):
    still = clips[:, :1].expand(-1, 4, -1, -1, -1).float().div(255).contiguous()
    (view,) = build_policy("noise(std=0:0.2)", views=1)(still, generator=torch.Generator().manual_seed(2))
    residual = view - still
    assert not torch.equal(residual[:, 0], residual[:, 1])
    spread = residual.flatten(2).std(dim=2)  # [clips, frames]: one std per clip, whatever the frame
    assert (spread.max(dim=1).values - spread.min(dim=1).values).max() < 0.02
    assert spread[:, 0].max() - spread[:, 0].min() > 0.05


def test_clips_make_no_host_sync_with_blend_gating(clips):
    policy = build_policy("simclr", size=24, views=2, gating="blend")
    assert count_ops(lambda: policy(clips, generator=torch.Generator().manual_seed(0))).syncs == {}


def test_a_converted_pipeline_on_clips_matches_torchvision_on_each_clip(clips):
    """torchvision given one clip as a tensor draws once for all its frames: the same per-frame
    agreement, and per-frame means distributed alike."""
    pipeline = v2.Compose([v2.RandomResizedCrop(24, antialias=False), v2.RandomHorizontalFlip(),
                           v2.ColorJitter(0.4, 0.4, 0.4, 0.1), v2.RandomGrayscale(0.2),
                           v2.ToDtype(torch.float32, scale=True)])
    policy = from_torchvision(pipeline)
    ours = torch.cat([policy(clips, generator=torch.Generator().manual_seed(s)) for s in range(30)])
    torch.manual_seed(0)
    theirs = torch.cat([torch.stack([pipeline(clip) for clip in clips]) for _ in range(30)])
    assert ours.shape == theirs.shape == (240, 4, 3, 24, 24)
    # frame t+1 of a clip is frame t shifted: with shared parameters their means stay close
    drift = lambda v: (v[:, 1:].mean(dim=(2, 3, 4)) - v[:, :-1].mean(dim=(2, 3, 4))).abs().flatten()
    qs = torch.tensor([0.25, 0.5, 0.75, 0.9])
    torch.testing.assert_close(drift(ours).quantile(qs), drift(theirs).quantile(qs), atol=0.01, rtol=0)
    means = lambda v: v.mean(dim=(2, 3, 4)).flatten()
    torch.testing.assert_close(means(ours).quantile(qs), means(theirs).quantile(qs), atol=0.03, rtol=0)


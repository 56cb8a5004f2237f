"""GPU paths (run by `make gpu-check`; skipped without CUDA)."""
import pytest
import torch

from augpipe import build_policy, kernels

pytestmark = pytest.mark.gpu


def cuda_gen(seed):
    return torch.Generator(device="cuda").manual_seed(seed)


def test_policy_on_cuda_is_reproducible_and_stays_on_device(photo_batch):
    x = photo_batch.cuda()
    policy = build_policy("simclr", size=32)
    a = policy(x, generator=cuda_gen(3))
    b = policy(x, generator=cuda_gen(3))
    assert all(v.is_cuda for v in a)
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_cuda_kernels_match_cpu_for_same_params(photo_batch):
    x = photo_batch.float() / 255
    n = x.shape[0]
    boxes = torch.tensor([[4, 2, 30, 40]] * n)
    sigma = torch.linspace(0.2, 2.0, n)
    shift = torch.linspace(-0.5, 0.5, n)
    for fn, args in [(kernels.resized_crop, (boxes, (32, 32))), (kernels.gaussian_blur, (sigma, 5)),
                     (kernels.hue, (shift,)), (kernels.contrast, (sigma,))]:
        cpu = fn(x.clone(), *args)
        gpu = fn(x.cuda(), *[a.cuda() if torch.is_tensor(a) else a for a in args]).cpu()
        torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=0)


def test_bf16_channels_last_and_event_timing_on_cuda(photo_batch):
    policy = build_policy("byol", size=32, dtype="bf16", channels_last=True, time_ops=True)
    views = policy(photo_batch.cuda(), generator=cuda_gen(0))
    assert views[0].dtype == torch.bfloat16 and views[0].is_contiguous(memory_format=torch.channels_last)
    assert set(policy.op_seconds()) == {"rrc", "flip", "jitter", "gray", "blur", "solarize"}

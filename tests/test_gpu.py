"""GPU paths (run by `make gpu-check`; skipped without CUDA)."""
import pytest
import torch

from augpipe import build_policy, functional
from tests.tolerance import assert_float_close

pytestmark = pytest.mark.gpu


def cuda_gen(seed):
    return torch.Generator(device="cuda").manual_seed(seed)


def test_policy_on_cuda_is_reproducible_and_stays_on_device(photo_batch):
    x = photo_batch.cuda()
    policy = build_policy("simclr", size=32, compile=False)
    a = policy(x, generator=cuda_gen(3))
    b = policy(x, generator=cuda_gen(3))
    assert all(v.is_cuda for v in a)
    assert all(torch.equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("spec", ["simclr", "byol", "noise", "simclr-cifar"])
def test_blend_policy_call_never_synchronises(spec, photo_batch):
    """CUDA's own sync detector: any device->host read in sample or apply raises."""
    x = photo_batch.cuda()
    policy = build_policy(spec, size=32, gating="blend", compile=False, normalize="imagenet")
    policy(x, generator=cuda_gen(0))  # one-time constants outside the check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        policy(x, generator=cuda_gen(1))
        policy(x.float() / 255, generator=cuda_gen(1))
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_compiled_policy_matches_eager_on_cuda(photo_batch):
    x = photo_batch.cuda()
    eager = build_policy("simclr", size=32, gating="blend", compile=False)
    compiled = build_policy("simclr", size=32, compile=True)
    params = eager.sample(x, generator=cuda_gen(2))
    for a, b in zip(eager.apply(x, params), compiled.apply(x, params)):
        assert_float_close(b, a, roundings=64)


def test_cuda_kernels_match_cpu_for_same_params(photo_batch):
    x = photo_batch.float() / 255
    n = x.shape[0]
    boxes = torch.tensor([[4, 2, 30, 40]] * n)
    sigma = torch.linspace(0.2, 2.0, n)
    shift = torch.linspace(-0.5, 0.5, n)
    factors = torch.stack([sigma, sigma.flip(0), sigma, shift * 0.4], 1)
    order = torch.rand(n, 4, generator=torch.Generator().manual_seed(0)).argsort(1)
    for fn, args in [(functional.resized_crop, (boxes, (32, 32))), (functional.gaussian_blur, (sigma, 5)),
                     (functional.hue, (shift,)), (functional.color_jitter, (factors, order))]:
        cpu = fn(x.clone(), *args)
        gpu = fn(x.cuda(), *[a.cuda() if torch.is_tensor(a) else a for a in args]).cpu()
        torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=0)


def test_bf16_channels_last_and_event_timing_on_cuda(photo_batch):
    policy = build_policy("byol", size=32, dtype="bf16", channels_last=True, time_ops=True, compile=False)
    views = policy(photo_batch.cuda(), generator=cuda_gen(0))
    assert views[0].dtype == torch.bfloat16 and views[0].is_contiguous(memory_format=torch.channels_last)
    assert set(policy.op_seconds()) == {"rrc+flip", "jitter", "gray", "blur", "solarize"}

"""`torch.compile(policy.apply, fullgraph=True)` takes the blend path, and equals eager."""
import pytest
import torch

from augpipe import build_policy


@pytest.mark.slow
@pytest.mark.parametrize("spec, views", [("simclr", 2), ("byol", 2), ("noise", 2),
                                         ("simclr", "2x32+2x16@0.05:0.14"),
                                         ("rrc(scale=0.2:1)+flip+jitter(0.4,0.4,0.4,0.1,p=0.8)+gray(p=0.2)"
                                          "+solarize(p=0.3)+noise(std=0.05)", 2)])
def test_fullgraph_compile_matches_eager(spec, views, photo_batch):
    policy = build_policy(spec, size=32, views=views, gating="blend", normalize="imagenet")
    params = policy.sample(photo_batch, generator=torch.Generator().manual_seed(2))
    eager = policy.apply(photo_batch, params)
    compiled = torch.compile(policy.apply, fullgraph=True)(photo_batch, params)
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_compile_switch_uses_the_compiled_graph(photo_batch):
    policy = build_policy("simclr", size=32, compile=True, time_ops=True)
    plain = build_policy("simclr", size=32, gating="blend")
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for a, b in zip(policy(photo_batch, generator=g1), plain(photo_batch, generator=g2)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert set(policy.op_seconds()) == {"compiled"}

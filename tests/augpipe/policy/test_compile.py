"""`torch.compile(policy.apply, fullgraph=True)` takes the blend path, and equals eager."""
import pytest
import torch

from augpipe import build_policy
from tests.tolerance import assert_float_close


# One compile per distinct shape of graph: every op once, with one chain per view, through
# inductor (a cold compile costs 15-40 s on 2 cores: the generated code is checked once); the
# other shapes through `aot_eager`, which traces the same full graph (dynamo + AOT autograd: a
# graph break or a data-dependent shape fails there too) without generating code: multi-crop,
# whose chains differ in size (SimCLR's ops), and a plain resize (the noise policy: no crop).
# The ops of torchvision's recipes compile in one graph with RandomChoice / RandomOrder:
# tests/augpipe/interop/test_torchvision.py::test_a_converted_pipeline_compiles_fullgraph_and_equals_eager
@pytest.mark.slow
@pytest.mark.parametrize("spec, views, backend", [
    ("noise", 2, "aot_eager"), ("simclr", "2x32+2x16@0.05:0.14", "aot_eager"),
    ("rrc(antialias=true)+flip+resize(antialias=true)", 2, "aot_eager"),
    ("rrc(scale=0.2:1)+flip+jitter(0.4,0.4,0.4,0.1,p=0.8)+gray(p=0.2)+blur(sigma=0.1:2,p=0.5)+solarize(p=0.3)"
     "+noise(std=0.05)", 2, "inductor")])
def test_fullgraph_compile_matches_eager(spec, views, backend, photo_batch):
    policy = build_policy(spec, size=32, views=views, gating="blend", normalize="imagenet")
    params = policy.sample(photo_batch, generator=torch.Generator().manual_seed(2))
    eager = policy.apply(photo_batch, params)
    compiled = torch.compile(policy.apply, fullgraph=True, backend=backend)(photo_batch, params)
    for a, b in zip(eager, compiled):
        assert_float_close(b, a, extent=32)


@pytest.mark.slow
def test_compile_switch_uses_the_compiled_graph(photo_batch):
    # a small graph (resize + noise): the switch is what is tested, not the ops (compiled above)
    policy = build_policy("noise", size=32, compile=True, time_ops=True)
    plain = build_policy("noise", size=32, gating="blend")
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for a, b in zip(policy(photo_batch, generator=g1), plain(photo_batch, generator=g2)):
        assert_float_close(a, b)
    assert set(policy.op_seconds()) == {"compiled"}


def _hue_kernel_seen(spec_options: dict, photo_batch) -> object:
    """The `hue_kernel` option a policy hands its kernels, seen by a registered probe op."""
    from dataclasses import dataclass

    from augpipe import Op, register_op
    seen = []

    @register_op(replace=True)
    @dataclass
    class HueProbe(Op):
        name = "test_hue_probe"

        def kernel(self, images, params, ctx):
            seen.append(ctx.options.get("hue_kernel"))
            return images
    build_policy("test_hue_probe", size=32, cpu_threads="keep", **spec_options)(photo_batch)
    return seen[0]


@pytest.mark.slow
def test_cpu_hue_is_compiled_for_large_views_and_equals_eager(photo_batch, monkeypatch):
    """compile="auto" on the CPU: the hue runs as inductor's fused loop from
    COMPILED_HUE_MIN_PIXELS up (lowered here so a 32 px batch takes it), with the same views."""
    from augpipe import functional
    from augpipe.policy import _cpu as cpu
    monkeypatch.setattr(cpu, "COMPILED_HUE_MIN_PIXELS", 32 * 32)
    hue = cpu.CompiledHue()
    assert hue.for_images(photo_batch.float()) is not functional.hue
    assert hue.for_images(photo_batch[:, :, :16, :16].float()) is functional.hue  # small: eager
    assert cpu.CompiledHue(enabled=False).for_images(photo_batch.float()) is functional.hue
    handed = _hue_kernel_seen({}, photo_batch)  # compile="auto": the policy hands its compiled hue
    assert isinstance(handed, cpu.CompiledHue) and handed.enabled
    assert not _hue_kernel_seen({"compile": False}, photo_batch).enabled
    assert _hue_kernel_seen({"gating": "blend"}, photo_batch) is None  # the blend path: eager
    spec = "rrc(scale=0.2:1)+jitter(0.4,0.4,0.4,0.1,p=0.8)"
    auto = build_policy(spec, size=32, cpu_threads="keep")
    eager = build_policy(spec, size=32, cpu_threads="keep", compile=False)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for a, b in zip(auto(photo_batch, generator=g1), eager(photo_batch, generator=g2)):
        assert_float_close(a, b)
    x, shift = photo_batch.float() / 255, torch.full((photo_batch.shape[0],), 0.1)
    assert_float_close(hue(x.clone(), shift), functional.hue(x, shift))


def test_cpu_hue_falls_back_to_eager_when_compiling_fails(photo_batch):
    from augpipe import functional
    from augpipe.policy import _cpu as cpu

    def broken(*args):
        raise RuntimeError("no C++ compiler")
    hue = cpu.CompiledHue(min_pixels=1, compiler=lambda fn, dynamic: broken)
    x, shift = photo_batch.float() / 255, torch.full((photo_batch.shape[0],), 0.1)
    with pytest.warns(RuntimeWarning, match="compiling the CPU hue kernel failed.*no C\\+\\+ compiler"):
        out = hue(x.clone(), shift)
    torch.testing.assert_close(out, functional.hue(x, shift), atol=0, rtol=0)
    assert hue.failed
    assert hue.for_images(x) is functional.hue  # off for the rest of this policy's life

"""Writes golden_views.pt: the views of every preset (and a multi-crop, normalised policy) for a
fixed input and seed, under both gatings. Run once, before a refactor of augpipe; the test
`tests/augpipe/test_golden.py` then holds every later version of the code to these numbers.

    python tests/golden/make_golden.py
"""
from pathlib import Path

import torch

import augpipe

CASES = [(name, dict(views=2)) for name in augpipe.list_policies()] + [
    ("simclr", dict(views="2x12+2x8@0.05:0.14", normalize="imagenet")),
]


def golden_input() -> torch.Tensor:
    g = torch.Generator().manual_seed(2024)
    return torch.randint(0, 256, (4, 3, 20, 16), dtype=torch.uint8, generator=g)


def views_of(name: str, options: dict, gating: str) -> list[torch.Tensor]:
    policy = augpipe.build_policy(name, size=12, gating=gating, compile=False, cpu_threads="keep", **options)
    return policy(golden_input(), generator=torch.Generator().manual_seed(7))


def case_key(name: str, options: dict) -> str:
    return name + "".join(f"|{k}={v}" for k, v in sorted(options.items()))


if __name__ == "__main__":
    table = {case_key(n, o): views_of(n, o, "subset") for n, o in CASES}
    for n, o in CASES:  # both gatings agree before anything is pinned
        for a, b in zip(table[case_key(n, o)], views_of(n, o, "blend")):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    torch.save(table, Path(__file__).with_name("golden_views.pt"))

"""Writes golden_views.json: a fingerprint of the views of every preset (and a multi-crop,
normalised policy) for a fixed input and seed. Run once the views are right (first before the
extension refactor); `tests/augpipe/policy/test_golden.py` then holds every later version of the code,
under both gatings, to these numbers.

The fingerprint, per view, is each image's per-channel mean and std and its row and column
profiles (means over the other axis and the channels): text, small enough to review, and any
change of a crop, a flip or a colour moves it by far more than the few float32 rounding steps
the test allows (`tests/tolerance.py`).

    python -m tests.golden.make_golden
"""
import json
from pathlib import Path

import torch

import augpipe
from tests.tolerance import assert_float_close

CASES = [(name, dict(views=2)) for name in augpipe.list_policies()] + [
    ("simclr", dict(views="2x12+2x8@0.05:0.14", normalize="imagenet")),
]
PATH = Path(__file__).with_name("golden_views.json")


def golden_input() -> torch.Tensor:
    g = torch.Generator().manual_seed(2024)
    return torch.randint(0, 256, (4, 3, 20, 16), dtype=torch.uint8, generator=g)


def views_of(name: str, options: dict, gating: str) -> list[torch.Tensor]:
    policy = augpipe.build_policy(name, size=12, gating=gating, compile=False, cpu_threads="keep", **options)
    return policy(golden_input(), generator=torch.Generator().manual_seed(7))


def fingerprint(view: torch.Tensor) -> dict[str, list]:
    v = view.double()
    return {"mean": v.mean(dim=(2, 3)).tolist(), "std": v.std(dim=(2, 3)).tolist(),
            "rows": v.mean(dim=(1, 3)).tolist(), "cols": v.mean(dim=(1, 2)).tolist()}


def case_key(name: str, options: dict) -> str:
    return name + "".join(f"|{k}={v}" for k, v in sorted(options.items()))


if __name__ == "__main__":
    table = {}
    for n, o in CASES:
        views = views_of(n, o, "subset")
        for a, b in zip(views, views_of(n, o, "blend")):  # both gatings agree before anything is pinned
            assert_float_close(a, b)
        table[case_key(n, o)] = [fingerprint(v) for v in views]
    PATH.write_text(json.dumps(table, indent=0) + "\n")

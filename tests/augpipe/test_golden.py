"""The views of every preset stay what they were when `tests/golden/golden_views.pt` was written
(before the extension refactor): same seed, same views, under both gatings."""
from pathlib import Path

import pytest
import torch

from tests.golden.make_golden import CASES, case_key, views_of

GOLDEN = torch.load(Path(__file__).parents[1] / "golden" / "golden_views.pt", weights_only=True)


@pytest.mark.parametrize("gating", ["subset", "blend"])
@pytest.mark.parametrize("name, options", CASES, ids=[case_key(n, o) for n, o in CASES])
def test_views_equal_the_pinned_golden_views(name, options, gating):
    if case_key(name, options) not in GOLDEN:
        pytest.fail(f"{case_key(name, options)} has no pinned views: run tests/golden/make_golden.py once it is right")
    expected = GOLDEN[case_key(name, options)]
    got = views_of(name, options, gating)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)

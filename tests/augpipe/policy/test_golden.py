"""The views of every preset stay what they were when `tests/golden/golden_views.json` was written
(first before the extension refactor): same seed, same views, under both gatings."""
import json

import pytest
import torch

from tests.golden.make_golden import CASES, PATH, case_key, fingerprint, views_of
from tests.tolerance import assert_float_close

GOLDEN = json.loads(PATH.read_text())


@pytest.mark.parametrize("gating", ["subset", "blend"])
@pytest.mark.parametrize("name, options", CASES, ids=[case_key(n, o) for n, o in CASES])
def test_views_equal_the_pinned_golden_views(name, options, gating):
    if case_key(name, options) not in GOLDEN:
        pytest.fail(f"{case_key(name, options)} has no pinned views: run python -m tests.golden.make_golden once it is right")
    expected = GOLDEN[case_key(name, options)]
    got = views_of(name, options, gating)
    assert len(got) == len(expected)
    for view, pinned in zip(got, expected):
        for key, values in fingerprint(view).items():
            assert_float_close(torch.tensor(values, dtype=torch.float64), torch.tensor(pinned[key], dtype=torch.float64),
                               dtype=view.dtype, msg=lambda m, key=key: f"{key}: {m}")

"""The CPU path's row subsets (augpipe/functional/_rows.py): `put` equals `index_copy_` on both sides of the
per-row-loop threshold, and writes into the target it was given."""
import pytest
import torch

from augpipe.functional import _rows as rows


@pytest.mark.parametrize("side", [8, 96])  # below and above ROW_LOOP_MIN_PIXELS
def test_put_equals_index_copy_and_writes_in_place(side):
    assert rows.loops_pay((side, side)) == (side == 96)
    g = torch.Generator().manual_seed(0)
    target = torch.rand(7, 3, side, side, generator=g)
    values = torch.rand(3, 3, side, side, generator=g)
    idx = torch.tensor([5, 0, 3])
    expected = target.clone().index_copy_(0, idx, values)
    out = rows.put(target, idx, values)
    assert out is target
    assert torch.equal(out, expected)


def test_take_selects_rows_and_none_keeps_all():
    t = torch.arange(12.0).view(6, 2)
    assert rows.take(t, None) is t
    assert torch.equal(rows.take(t, torch.tensor([4, 1])), t[[4, 1]])

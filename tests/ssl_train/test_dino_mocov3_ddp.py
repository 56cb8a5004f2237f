"""Under DDP (two gloo processes on the CPU): DINO's centre is the EMA of the batch mean over
every rank, and MoCo v3's keys are gathered so that each rank's loss is the single-process loss
of its queries against all keys, its positive at its own rows."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    return {name: torch.randn(2, 6, 5, generator=g) for name in ("teacher1", "teacher2", "q1", "q2", "k1", "k2")}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        from types import SimpleNamespace

        from ssl_train import dist as ours
        from ssl_train.methods import METHODS
        from ssl_train.methods.mocov3 import mocov3_loss
        d = _data()  # [rank, rows, dim]: each rank holds its own rows
        cfg = SimpleNamespace(proj_hidden=8, proj_dim=4, proj_layers=2, ema=0.9, method="dino",
                              method_options={"out_dim": 5, "bottleneck_dim": 3, "center_momentum": 0.5})
        dino = METHODS["dino"](4, cfg)
        dino.update_center([d["teacher1"][rank], d["teacher2"][rank]])
        keys = [ours.gather(d["k1"][rank]), ours.gather(d["k2"][rank])]
        loss = mocov3_loss([d["q1"][rank], d["q2"][rank]], keys, 0.2, offset=ours.rank() * 6)
        torch.save({"center": dino.center, "loss": loss, "keys": keys[0]}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_the_centre_and_the_keys_span_every_rank(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    from ssl_train.methods.mocov3 import mocov3_loss
    d = _data()
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    every_row = torch.cat([d["teacher1"].flatten(0, 1), d["teacher2"].flatten(0, 1)])
    expected_center = 0.5 * every_row.mean(dim=0, keepdim=True)  # from a zero centre, momentum 0.5
    all_k1, all_k2 = d["k1"].flatten(0, 1), d["k2"].flatten(0, 1)
    for rank, got in enumerate(ranks):
        torch.testing.assert_close(got["center"], expected_center)
        torch.testing.assert_close(got["keys"], all_k1)
        expected = mocov3_loss([d["q1"][rank], d["q2"][rank]], [all_k1, all_k2], 0.2, offset=6 * rank)
        torch.testing.assert_close(got["loss"], expected)
    assert not torch.allclose(ranks[0]["loss"], ranks[1]["loss"])

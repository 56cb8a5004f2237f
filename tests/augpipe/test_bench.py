"""`python -m augpipe.bench` writes a table, a JSON list of records and a PNG chart."""
import json

import pytest
import torch

from augpipe import bench


def test_bench_writes_json_records_and_chart(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench.main(["--device", "cpu", "--sizes", "16", "--policies", "crop,noise",
                     "--engines", "augpipe,kornia,torchvision", "--batch", "8", "--repeats", "1",
                     "--warmup", "0", "--json", str(out)])
    assert rc == 0
    records = json.loads(out.read_text())
    assert {(r["engine"], r["policy"]) for r in records} == {
        (e, p) for e in ("augpipe", "kornia", "torchvision") for p in ("crop", "noise")}
    for r in records:
        assert {"engine", "policy", "size", "batch", "device", "images_per_s", "machine", "versions"} <= set(r)
        assert r["images_per_s"] > 0 and r["size"] == 16 and r["batch"] == 8 and r["device"] == "cpu"
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "| 16 | 8 | crop |" in table and "augpipe" in table


@pytest.mark.parametrize("argv, message", [
    (["--engines", "pil"], "unknown pil"),
    (["--policies", "simclrr"], "valid policies"),
    (["--sizes", "big"], "comma-separated integers"),
])
def test_bench_rejects_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err


def test_the_targets_bench_times_boxes_and_masks_on_three_engines():
    records = bench.run_targets_bench([16], torch.device("cpu"), warmup=0, repeats=1, batch=4, log=lambda s: None)
    assert {(r["policy"], r["engine"]) for r in records} == {
        (task, engine) for task in ("detection (+boxes)", "segmentation (+masks)")
        for engine in ("augpipe", "torchvision", "kornia")}
    assert all(r["images_per_s"] > 0 and r["size"] == 16 for r in records)
    runs = bench._target_runs("detection", torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8),
                              torch.Generator().manual_seed(0))
    views, moved = runs["augpipe"](torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8))
    assert views.shape == (4, 3, 16, 16) and moved.boxes.shape == (4, 8, 4)

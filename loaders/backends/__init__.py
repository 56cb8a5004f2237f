"""How bytes become batches: the `Backend` contract and what the backends share (`base`: the
registry, `LoaderConfig`, `Selection`; `order`: each epoch's order and shard), and the backends,
`torch_backend`, `dali_backend`, `ffcv_backend`, with the shard readers `torch_shards` and
`dali_shards`. Backends import `loaders.sources`, never the CLIs or `loaders.build`."""

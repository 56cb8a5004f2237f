"""The Backend contract from outside the package: a registered backend is a `build_loader` kind,
and `Selection` gives it the same subset, order and shards as the built-in backends."""
import numpy as np
import pytest
import torch

import loaders
from loaders import LoaderConfig, Selection, build_loader, register_backend
from loaders.backends.order import epoch_indices, subset_members


@register_backend
class MemoryBackend:
    """Sample i is a constant image of value i % 256, labelled i: the order can be read back."""
    name = "test_memory"

    def __init__(self, path, config: LoaderConfig):
        self.config, self.classes, self.skipped = config, ["a", "b"], []
        self.selection = Selection(int(path.name), config)  # the source names the number of samples
        self.size = self.selection.size

    def iter_epoch(self, epoch):
        c = self.config
        order = self.selection.epoch_order(epoch)
        for start in range(0, len(order), c.batch_size):
            idx = torch.as_tensor(order[start:start + c.batch_size])
            images = (idx % 256).to(torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, c.image_size, c.image_size)
            yield images.to(c.device), idx.to(c.device)


def test_a_registered_backend_is_a_loader_kind_with_the_shared_order():
    assert "test_memory" in loaders.BACKENDS
    loader = build_loader("test_memory", "50", batch_size=8, image_size=4, seed=5, subset=30)
    members = subset_members(50, 30, 5)
    for epoch in range(2):
        labels = torch.cat([y for _, y in loader]).numpy()
        np.testing.assert_array_equal(labels, members[epoch_indices(30, epoch=epoch, seed=5, shuffle=True)])
    assert len(loader) == 4 and loader.classes == ["a", "b"]


def test_ranks_of_a_registered_backend_get_disjoint_shards_that_cover():
    seen = [torch.cat([y for _, y in build_loader("test_memory", "41", batch_size=5, image_size=2, rank=r,
                                                  world_size=3, drop_last=True)]).tolist() for r in range(3)]
    flat = [i for shard in seen for i in shard]
    assert len(flat) == len(set(flat)) == 39 and all(len(s) == 13 for s in seen)


def test_a_taken_name_or_a_broken_backend_is_refused():
    with pytest.raises(ValueError, match="a loader backend named 'torch' is already registered"):
        register_backend(type("Mine", (MemoryBackend,), {"name": "torch"}))

    class NoEpochs:
        name = "test_broken"
    with pytest.raises(TypeError, match="iter_epoch"):
        register_backend(NoEpochs)
    with pytest.raises(ValueError, match="unknown loader kind 'test_broken'"):
        build_loader("test_broken", "1", batch_size=1, image_size=2)
    with pytest.raises(TypeError):
        LoaderConfig(8, 32, torch.device("cpu"))  # keyword-only: no positional soup


@register_backend
class OptionBackend(MemoryBackend):
    """A backend with an option of its own (as FFCV's `order`): nothing in LoaderConfig."""
    name = "test_option"

    def __init__(self, path, config: LoaderConfig, flavour: str = "plain"):
        super().__init__(path, config)
        self.flavour = flavour


def test_a_backends_own_options_reach_it_and_others_refuse_them_in_one_line():
    assert build_loader("test_option", "10", batch_size=4, image_size=2, flavour="salted")._backend.flavour == "salted"
    assert build_loader("test_option", "10", batch_size=4, image_size=2)._backend.flavour == "plain"
    with pytest.raises(ValueError, match="^the test_memory loader takes no option 'flavour'$"):
        build_loader("test_memory", "10", batch_size=4, image_size=2, flavour="salted")
    assert "ffcv_order" not in LoaderConfig.__dataclass_fields__  # one backend's setting is its own
    with pytest.warns(DeprecationWarning, match="order="), pytest.raises(ValueError, match="takes no option 'order'"):
        build_loader("test_memory", "10", batch_size=4, image_size=2, ffcv_order="quasi_random")

"""The shared timer: phases accumulate (add, never overwrite) across intervals and names."""
import time

from _augpipe_shared.timing import SyncTimer, TimeAccount


def _busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_time_account_adds_every_interval_of_a_phase():
    account = TimeAccount("cpu")
    for _ in range(3):
        with account.phase("work"):
            _busy(0.01)
    with account.phase("other"):
        _busy(0.005)
    seconds = account.seconds
    assert set(seconds) == {"work", "other"}
    assert seconds["work"] >= 0.03            # three intervals added, not the last one kept
    assert 0.005 <= seconds["other"] < seconds["work"]
    with account.phase("work"):
        _busy(0.01)
    assert account.seconds["work"] >= seconds["work"] + 0.01  # totals keep adding after a read


def test_time_account_counts_a_phase_left_by_an_exception_and_resets():
    account = TimeAccount("cpu")
    try:
        with account.phase("data"):
            _busy(0.005)
            raise StopIteration
    except StopIteration:
        pass
    assert account.seconds["data"] >= 0.005
    account.reset()
    assert account.seconds == {}


def test_sync_timer_measures_its_block():
    timer = SyncTimer("cpu")
    with timer:
        _busy(0.01)
    assert timer.seconds >= 0.01


class _FakeCuda:
    """Stands in for torch.cuda on a machine without a GPU: records synchronisations, and events
    whose elapsed times are set by the test (milliseconds, as CUDA reports them)."""

    def __init__(self, elapsed_ms):
        self.synced, self.elapsed = [], list(elapsed_ms)

    def synchronize(self, device=None):
        self.synced.append(device)

    def Event(self, enable_timing=False):  # torch's name
        fake = self

        class Event:
            def __init__(self):
                assert enable_timing
                self.recorded = False

            def record(self):
                self.recorded = True

            def elapsed_time(self, end):
                assert self.recorded and end.recorded
                return fake.elapsed.pop(0)
        return Event()


def test_cuda_timers_synchronise_the_device_and_read_events_once(monkeypatch):
    import torch
    fake = _FakeCuda([5.0, 7.0, 11.0])
    monkeypatch.setattr(torch, "cuda", fake)
    cuda = torch.device("cuda", 1)
    account = TimeAccount("cuda:1")
    for name in ("data", "model", "data"):
        with account.phase(name):
            pass
    assert fake.synced == []                       # no sync per phase
    assert account.seconds == {"data": 0.016, "model": 0.007}
    assert fake.synced == [cuda]                   # one sync, on the account's device
    assert account.seconds == {"data": 0.016, "model": 0.007} and fake.synced == [cuda]  # folded in once
    fake.synced.clear()
    timer = SyncTimer(cuda)
    with timer:
        assert fake.synced == [cuda]               # before the clock starts
    assert fake.synced == [cuda, cuda] and 0 <= timer.seconds < 1
    fake.synced.clear()
    with SyncTimer("cpu"), SyncTimer(None):
        pass
    assert fake.synced == []                       # the CPU (and no device) never synchronise
    from _augpipe_shared.timing import sync
    sync("cuda:1")
    sync(None)
    assert fake.synced == [cuda]


def test_timers_start_at_zero_and_default_to_the_cpu():
    timer = SyncTimer()
    assert timer.seconds == 0.0 and timer.device == torch_device("cpu")
    assert SyncTimer(None).device is None
    assert TimeAccount().device == torch_device("cpu") and TimeAccount(None).device == torch_device("cpu")
    assert TimeAccount().seconds == {}


def torch_device(name):
    import torch
    return torch.device(name)

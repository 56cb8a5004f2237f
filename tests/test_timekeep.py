"""The shared timer: phases accumulate (add, never overwrite) across intervals and names."""
import time

from timekeep import SyncTimer, TimeAccount


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

"""The shared timer: phases accumulate, CPU intervals are read directly."""
import time

from timekeep import IntervalLog, SyncTimer, TimeAccount


def test_time_account_sums_phases():
    account = TimeAccount("cpu")
    for _ in range(2):
        with account.phase("work"):
            time.perf_counter()
    with account.phase("other"):
        pass
    assert set(account.seconds) == {"work", "other"} and all(v >= 0 for v in account.seconds.values())
    timer = SyncTimer("cpu")
    with timer:
        sum(range(1000))
    assert timer.seconds > 0


def test_interval_log_totals_and_reset():
    log = IntervalLog("cpu")
    with log.interval("a"):
        sum(range(1000))
    with log.interval("a"):
        sum(range(1000))
    first = log.totals()["a"]
    assert first > 0
    log.reset()
    assert log.totals() == {}

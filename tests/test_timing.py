"""The one timer: wall and CPU seconds of a block, frozen when it ends, readable while it runs."""
import time

from medvid_core.timing import timed


def test_block_gives_wall_and_cpu_and_freezes():
    with timed() as t:
        time.sleep(0.05)  # wall time, no CPU
        end = time.process_time() + 0.05
        while time.process_time() < end:  # CPU time
            pass
    assert 0.1 <= t.wall < 1.0 and 0.05 <= t.cpu < t.wall
    frozen = t.wall, t.cpu
    time.sleep(0.01)
    assert (t.wall, t.cpu) == frozen


def test_started_without_with_runs_until_stopped():
    t = timed()
    time.sleep(0.02)
    assert t.wall >= 0.02 and "running" in repr(t)
    first = t.stop().wall
    time.sleep(0.01)
    assert t.stop().wall == first == t.wall and "stopped" in repr(t)  # a second stop keeps the first reading


def test_entering_restarts_the_clock():
    t = timed()
    time.sleep(0.05)
    with t:
        pass
    assert t.wall < 0.05


def test_a_cuda_device_is_waited_for_before_the_clock_stops(monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(str(device)))
    with timed(device="cuda:0"):
        pass
    with timed(device="cpu"):
        pass
    assert calls == ["cuda:0"]

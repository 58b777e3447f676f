import numpy as np

from asr.plan import CHUNK_SECONDS, OVERLAP_SECONDS, bucket_batches, plan_windows


def test_bucket_batches_cover_everything_once_and_respect_budget():
    durations = [float(d) for d in np.random.default_rng(0).uniform(1, 20, 500)]
    for shuffle in (False, True):
        batches = bucket_batches(durations, 60.0, shuffle=shuffle, seed=3)
        assert sorted(i for b in batches for i in b) == list(range(500))
        assert all(max(durations[i] for i in b) * len(b) <= 60.0 for b in batches if len(b) > 1)
    assert bucket_batches(durations, 60.0, True, seed=1) != bucket_batches(durations, 60.0, True, seed=2)


def test_windows_of_a_long_file_overlap_and_keep_each_moment_once():
    windows = plan_windows(3, 95.0)
    assert all(w.file == 3 for w in windows) and windows[0].start == 0 and windows[-1].keep_to == float("inf")
    assert all(w.seconds <= CHUNK_SECONDS for w in windows)
    for a, b in zip(windows, windows[1:]):
        assert b.start == a.start + CHUNK_SECONDS - OVERLAP_SECONDS  # they overlap
        assert a.keep_to == b.keep_from  # each moment is kept by exactly one window
    assert windows[-1].start + windows[-1].seconds == 95.0
    (short,) = plan_windows(0, 12.5)
    assert short.whole and short.seconds == 12.5 and not windows[0].whole

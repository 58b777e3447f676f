"""The first stage of recognition: which pieces of audio are read, and in which batches.

A file up to ``CHUNK_SECONDS`` long is one :class:`Window`; a longer one is cut into windows
that overlap by ``OVERLAP_SECONDS``, and each keeps the words whose middle lies nearest its own
centre, so memory stays bounded whatever the file's length. Windows are grouped into batches
of similar duration (:func:`bucket_batches`, which training uses too).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

CHUNK_SECONDS = 30.0  # longer files are cut into windows this long...
OVERLAP_SECONDS = 2.0  # ...overlapping by this much, words kept where their middle is nearest their window's centre


@dataclass(frozen=True)
class Window:
    """A piece of one source to recognise on its own."""

    file: int  # index into the sources
    start: float  # seconds into the file
    stop: float | None  # seconds, None = to the end
    seconds: float  # length of this piece of audio
    keep_from: float  # words whose middle lies in [keep_from, keep_to) are kept
    keep_to: float

    @property
    def whole(self) -> bool:
        """Whether the window is the whole file."""
        return self.start == 0 and self.stop is None


def plan_windows(index: int, duration: float) -> list[Window]:
    """The windows of source ``index``, ``duration`` seconds long."""
    if duration <= CHUNK_SECONDS:
        return [Window(index, 0.0, None, duration, 0.0, float("inf"))]
    step = CHUNK_SECONDS - OVERLAP_SECONDS
    starts = [i * step for i in range(int((duration - OVERLAP_SECONDS) // step) + 1)]
    windows = []
    for k, s in enumerate(starts):
        keep_from = 0.0 if k == 0 else s + OVERLAP_SECONDS / 2
        keep_to = float("inf") if k == len(starts) - 1 else s + step + OVERLAP_SECONDS / 2
        windows.append(Window(index, s, s + CHUNK_SECONDS, min(CHUNK_SECONDS, duration - s), keep_from, keep_to))
    return windows


def bucket_batches(durations: list[float], max_seconds: float, shuffle: bool, seed: int = 0,
                   bucket_width: int = 64) -> list[list[int]]:
    """Group utterance indices into batches of similar duration holding at most ``max_seconds`` of audio.

    Indices are sorted by duration (with shuffling inside windows of ``bucket_width`` so
    epochs differ), cut into batches, and the batch order shuffled. Padding stays small,
    which on the CPU is much faster than PackedSequence.
    """
    rng = random.Random(seed)
    order = sorted(range(len(durations)), key=lambda i: durations[i])
    if shuffle:
        for start in range(0, len(order), bucket_width):
            window = order[start : start + bucket_width]
            rng.shuffle(window)
            order[start : start + bucket_width] = sorted(window, key=lambda i: durations[i] + rng.random() * 0.5)
    batches, batch, longest = [], [], 0.0
    for i in order:
        longest_if_added = max(longest, durations[i])
        if batch and longest_if_added * (len(batch) + 1) > max_seconds:
            batches.append(batch)
            batch, longest_if_added = [], durations[i]
        batch.append(i)
        longest = longest_if_added
    if batch:
        batches.append(batch)
    if shuffle:
        rng.shuffle(batches)
    return batches

"""Word crops: cut points between aligned words, the spans drawn, and clips cut from real utterances."""

import dataclasses
import json

import numpy as np
import pytest

import asr
from asr.crops import EDGE, CropConfig, choose_spans, cut_points, make_crops
from asr.ctc import Word
from asr.features import load_audio
from asr.manifest import read_manifest
from conftest import REPO

SAMPLES = REPO / "asr" / "assets" / "samples" / "manifest.jsonl"


def test_cut_points_halve_the_gaps_and_keep_a_pause_at_the_ends():
    assert EDGE == 0.2  # the pause kept at a sentence's ends, below
    words = [Word("a", 0.5, 0.8), Word("b", 1.0, 1.3), Word("c", 1.3, 1.9)]
    assert cut_points(words, 2.0) == [(0.3, 0.9), (0.9, 1.3), (1.3, 2.0)]  # the end: within the audio
    assert cut_points([Word("a", 0.1, 0.4)], 3.0) == [(0.0, 0.6)]  # the start: not before 0
    assert cut_points([], 1.0) == []


def test_spans_do_not_overlap_and_hold_one_to_max_words():
    rng = np.random.default_rng(0)
    config = CropConfig(per_utterance=3, max_words=3)
    sizes = set()
    for n in [1, 2, 5, 20] * 25:
        spans = choose_spans(n, config, rng)
        assert 1 <= len(spans) <= 3 and spans == sorted(spans)
        covered = [i for first, last in spans for i in range(first, last)]
        assert len(covered) == len(set(covered)) and all(0 <= i < n for i in covered)
        sizes |= {last - first for first, last in spans}
    assert sizes == {1, 2, 3}
    assert choose_spans(20, config, np.random.default_rng(5)) == choose_spans(20, config, np.random.default_rng(5))


def test_crops_are_the_utterances_own_samples_and_words(tmp_path):
    utts = read_manifest(SAMPLES)
    crops = make_crops(asr.load(), utts, tmp_path / "crops", CropConfig(per_utterance=2, max_words=3), log=lambda m: None)
    assert len(crops) == 2 * len(utts)
    by_id = {u.id: u for u in utts}
    for c in crops:
        source = by_id[c.id.rsplit("-crop", 1)[0]]
        words, said = source.text.split(), c.text.split()
        assert 1 <= len(said) <= 3
        assert any(words[i:i + len(said)] == said for i in range(len(words)))  # consecutive words of the transcript
        clip, whole = load_audio(c.audio), load_audio(source.audio)
        assert len(clip) == round(c.duration * 16000) < len(whole)
        # where the clip's first 64 samples lie in the utterance (FLAC keeps 16 bits: equal within 1e-4)
        start = int(np.abs(np.lib.stride_tricks.sliding_window_view(whole, 64) - clip[:64]).max(1).argmin())
        assert np.abs(whole[start:start + len(clip)] - clip).max() < 1e-4  # FLAC at 16 bits
        assert c.speaker == source.speaker
    summary = json.loads((tmp_path / "crops" / "crops.json").read_text())
    assert summary["crops"] == len(crops) and summary["unaligned"] == 0


def test_crops_resume_and_skip_what_cannot_be_aligned(tmp_path):
    utts = read_manifest(SAMPLES)
    unknown = dataclasses.replace(utts[0], id="x-0", text="it is a very zzqxj story")  # a word without phones
    rec = asr.load()
    crops = make_crops(rec, [unknown, utts[1]], tmp_path, CropConfig(per_utterance=1), log=lambda m: None)
    assert [c.id.rsplit("-crop", 1)[0] for c in crops] == [utts[1].id]
    assert json.loads((tmp_path / "crops.json").read_text())["unaligned"] == 1
    # a finished run is read back, not redone
    (tmp_path / "audio" / f"{utts[1].id}-crop0.flac").unlink()
    assert make_crops(rec, [utts[1]], tmp_path, log=lambda m: pytest.fail("redone")) == crops

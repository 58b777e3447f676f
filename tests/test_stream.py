"""Streaming recognition (asr.stream): resampling, chunk-size invariance, endpoints, bad input, the CLI."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import asr
from asr.cli import main
from asr.features import AudioError, load_audio
from asr.metrics import wer
from asr.stream import Stream, StreamError, _Resampler, pcm16_chunks

SAMPLES = "asr/assets/samples"


@pytest.fixture(scope="module")
def recognizer():
    return asr.load()  # the shipped bundle, with its stream.json


@pytest.fixture(scope="module")
def clip():
    return load_audio(f"{SAMPLES}/2300-131720-0008.opus")


def feed(stream: Stream, wav: np.ndarray, size: int, rate: int = 16000) -> list:
    partials = [stream.accept(wav[i:i + size], rate) for i in range(0, len(wav), size)]
    return partials, stream.finish()


@pytest.mark.parametrize("rate", [8000, 11025, 44100])
def test_resampler_equals_whole_resampling_whatever_the_chunks(rate):
    from asr.features import resample

    x = np.random.default_rng(0).standard_normal(rate * 2 + 123).astype(np.float32)
    whole = resample(x, rate, 16000)
    outs = []
    for size in (1, 97, rate):
        r = _Resampler(rate)
        y = np.concatenate([r(x[i:i + size]) for i in range(0, len(x), size)] + [r.finish()])
        outs.append(y)
    assert all(np.array_equal(outs[0], y) for y in outs[1:])  # chunking changes no sample
    assert len(outs[0]) == len(whole)
    np.testing.assert_allclose(outs[0], whole, atol=1e-4, rtol=0)


def test_pcm16_chunks_and_an_odd_byte():
    import io

    pcm = (np.array([0, 16384, -32768, 32767], dtype="<i2")).tobytes()
    chunks = list(pcm16_chunks(io.BytesIO(pcm), 16000, seconds=2 / 16000))
    assert np.concatenate(chunks).tolist() == [0.0, 0.5, -1.0, 32767 / 32768]
    got = []
    with pytest.raises(AudioError, match="odd number of bytes"):
        for c in pcm16_chunks(io.BytesIO(pcm + b"\x01"), 16000, seconds=1.0):
            got.append(c)
    assert np.concatenate(got).shape == (4,)  # the samples before it came through


def test_chunk_sizes_give_the_same_words(recognizer, clip):
    results = []
    for seconds in (0.01, 0.1, 1.0):
        _, finals = feed(recognizer.stream(), clip, int(16000 * seconds))
        results.append([(w.word, w.start, w.end, w.confidence) for seg in finals for w in seg.words])
    assert results[0] and results[0] == results[1] == results[2]


def test_stream_is_close_to_offline_and_partials_grow(recognizer, clip):
    offline = recognizer.transcribe(clip, sample_rate=16000).text
    partials, finals = feed(recognizer.stream(), clip, 1600)
    text = " ".join(s.text for s in finals)
    assert wer([offline], [text]) < 0.25, (offline, text)
    shown = [p for p in partials if p]
    assert shown and len(shown[-1].split()) > len(shown[0].split())  # words appear while the audio comes
    assert all(s.words[0].start == s.start and s.words[-1].end == s.end for s in finals)


def test_endpoint_splits_utterances_and_times_are_the_streams(recognizer, clip):
    gap = np.zeros(16000 * 2, dtype=np.float32)  # two seconds of silence between two sayings
    noise = 1e-4 * np.random.default_rng(0).standard_normal(len(gap)).astype(np.float32)
    wav = np.concatenate([clip, gap + noise, clip])
    s = recognizer.stream(endpoint_silence=0.6)
    seen = []
    for i in range(0, len(wav), 1600):
        s.accept(wav[i:i + 1600])
        while (seg := s.result()) is not None:
            seen.append((i / 16000, seg))
    seen += [(len(wav) / 16000, seg) for seg in s.finish()]
    middle = (len(clip) + len(gap) / 2) / 16000
    first = [seg for _, seg in seen if seg.end <= middle]
    second = [seg for _, seg in seen if seg.start >= middle]
    assert first and second and len(first) + len(second) == len(seen)  # no utterance spans the gap
    assert seen[0][0] < len(clip) / 16000 + 1.0  # the first came at its endpoint, long before the audio was over
    text = lambda segs: " ".join(seg.text for seg in segs)
    # the same saying twice, each recognised whole (the first a little worse: the stream's running
    # normalisation starts from the training statistics there, and has heard the speaker by the second)
    said = "everything he has done has been aimed at the conservation of energy the contraction of space " \
           "the intensification of culture"
    assert wer([said], [text(first)]) < 0.25 and wer([said], [text(second)]) < 0.25, (text(first), text(second))
    shift = second[0].words[0].start - first[0].words[0].start  # times are the stream's
    assert math.isclose(shift, (len(clip) + len(gap)) / 16000, abs_tol=0.1)
    ends = [(seg.start, seg.end) for _, seg in seen]
    assert all(a[1] <= b[0] + 1e-6 for a, b in zip(ends, ends[1:]))  # in order, not overlapping


def test_streams_of_one_recognizer_are_independent(recognizer, clip):
    a, b = recognizer.stream(), recognizer.stream()
    other = clip[::-1].copy()
    for i in range(0, len(clip), 3200):  # interleaved
        a.accept(clip[i:i + 3200])
        b.accept(other[i:i + 3200])
    alone = feed(recognizer.stream(), clip, 3200)[1]
    assert [s.text for s in a.finish()] == [s.text for s in alone]
    b.finish()


def test_bad_input_is_refused_and_what_was_final_stays(recognizer, clip):
    s = recognizer.stream()
    assert s.accept(np.zeros(0, dtype=np.float32)) == ""  # an empty chunk changes nothing
    s.accept(clip[:16000])
    with pytest.raises(AudioError, match="NaN"):
        s.accept(np.array([0.0, float("nan")], dtype=np.float32))
    with pytest.raises(AudioError, match="floating-point"):
        s.accept(np.array([1, 2], dtype=np.int16))
    with pytest.raises(AudioError, match=r"mono audio of shape \(N,\)"):
        s.accept(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(StreamError, match="cannot change to 8000 Hz"):
        s.accept(clip[:800], 8000)
    with pytest.raises(Exception, match="sample_rate must be a positive number"):
        s.accept(clip[:800], 16000.5)
    s.accept(clip[16000:], np.int64(16000))  # the stream goes on after a refused chunk
    finals = s.finish()
    assert finals
    with pytest.raises(StreamError, match="finished"):
        s.accept(clip[:100])
    with pytest.raises(Exception, match="unknown streaming option"):
        recognizer.stream(chunkk=1.0)


def test_other_rates_are_resampled(recognizer, clip):
    from asr.features import resample

    at8k = resample(clip, 16000, 8000)
    _, a = feed(recognizer.stream(), at8k, 800, rate=8000)
    _, b = feed(recognizer.stream(), at8k, 8000, rate=8000)
    assert [s.text for s in a] == [s.text for s in b] and a


def test_cli_stream_file_and_stdin_pcm(tmp_path, clip, capsys):
    assert main(["stream", f"{SAMPLES}/2300-131720-0008.opus", "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finals = [x for x in lines if "text" in x]
    assert finals and all(set(f) == {"text", "words", "start", "end"} for f in finals)
    assert any("partial" in x for x in lines)
    assert finals[0]["words"][0]["confidence"] > 0
    # raw PCM on stdin, ending in half a sample: the words come, then one clear error
    pcm = (clip * 32767).astype("<i2").tobytes() + b"\x00"
    r = subprocess.run([sys.executable, "-m", "asr", "stream", "-", "--rate", "16000"], input=pcm,
                       capture_output=True, timeout=300)
    assert r.returncode == 2
    assert r.stdout.decode().strip().split() == " ".join(f["text"] for f in finals).split()
    assert b"stdin: the audio ended in the middle of a 16-bit sample" in r.stderr
    assert main(["stream", str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav: file not found" in capsys.readouterr().err


def test_a_model_that_looks_ahead_reads_the_stream_as_it_reads_the_whole(clip):
    # a unidirectional model with a look-ahead of 2 steps: each chunk needs 2 steps of right
    # context (whatever right_context says), and then its outputs are the whole forward's
    from types import SimpleNamespace

    torch = pytest.importorskip("torch")
    from asr.features import FeatureConfig, compute_features
    from asr.model import AcousticModel, ModelConfig, export
    from asr.stream import StreamingConfig

    torch.manual_seed(0)
    features = FeatureConfig(cmvn=False)  # no normalisation: the stream's features are the offline ones
    model = export(AcousticModel(ModelConfig(features=features, hidden=16, layers=2, bidirectional=False,
                                             lookahead=2)).eval())
    stream = Stream(SimpleNamespace(model=model, lexicon=None, head="phone", beam=None),
                    StreamingConfig(chunk=0.09, right_context=0.0))
    got = []
    stream._outputs = lambda out: got.append(out["phone"])  # the model's output, chunk by chunk
    wav = clip[:16000]
    feed(stream, wav, 1000)
    feats = compute_features(wav, features)
    whole = model.forward(feats[None], np.array([len(feats)]))["phone"][0]
    np.testing.assert_allclose(np.concatenate(got), whole, atol=1e-5, rtol=0)


class FakeSounddevice:
    """sounddevice's InputStream, recording ``wav`` at once: each block to the callback as PortAudio would."""

    PortAudioError = RuntimeError

    def __init__(self, wav):
        self.wav, self.closed = wav, False

    def InputStream(self, samplerate, channels, dtype, blocksize, device, callback):
        assert (samplerate, channels, dtype) == (16000, 1, "float32")
        fake = self

        class Source:
            def __enter__(self):
                for i in range(0, len(fake.wav), blocksize):
                    block = fake.wav[i:i + blocksize][:, None]
                    callback(block, len(block), None, None)
                return self

            def __exit__(self, *exc):
                fake.closed = True

        return Source()


def test_cli_stream_from_a_microphone(monkeypatch, clip, capsys):
    assert main(["stream", f"{SAMPLES}/2300-131720-0008.opus"]) == 0
    from_file = capsys.readouterr().out.split()
    mic = FakeSounddevice(np.concatenate([clip, np.zeros(16000, dtype=np.float32)]))
    monkeypatch.setitem(sys.modules, "sounddevice", mic)
    seconds = len(clip) / 16000 + 0.5  # the recording stops here, half a second after the speech
    assert main(["stream", "--mic", "--duration", str(seconds)]) == 0
    assert capsys.readouterr().out.split() == from_file and from_file
    assert mic.closed
    assert main(["stream", "--mic", f"{SAMPLES}/2300-131720-0008.opus"]) == 2
    assert main(["stream", "--duration", "3"]) == 2  # a duration without --mic
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # not installed: import fails
    assert main(["stream", "--mic", "--duration", "1"]) == 2
    assert "pip install 'asr[mic]'" in capsys.readouterr().err


def test_stream_refuses_a_model_whose_features_it_cannot_compute():
    from types import SimpleNamespace

    from asr.errors import ConfigError
    from asr.features import FeatureConfig

    pcen_model = SimpleNamespace(config=SimpleNamespace(features=FeatureConfig(compression="pcen")))
    with pytest.raises(ConfigError, match="log-mel MFCC models only, and this model's features are 'pcen'"):
        Stream(SimpleNamespace(model=pcen_model))

"""asr: a small speech recognizer — MFCC features, a vanilla RNN with phone and character CTC heads, words, WER.

The public API::

    import asr
    rec = asr.load()                        # the shipped bundle; asr.load("exp/x/bundle") for another
    rec.transcribe("talk.flac").text        # -> Transcript: text, words with start, end, confidence
    rec.transcribe(["a.wav", "dir/"])       # -> list of Transcripts, one per file
    rec.transcribe(samples, sample_rate=8000)
    asr.load(decoder="greedy")              # decoding options as keywords (see asr.decode.DecodingConfig)
    s = asr.load("streaming").stream()      # live audio: s.accept(chunk, 16000) -> partial text,
    s.result(), s.finish()                  # -> final Segments at endpoints (see asr.stream)

The names below are imported on first use, so that ``import asr`` (and the CLI's start) stays light.
"""

__version__ = "0.1.0"

_EXPORTS = {
    "load": "transcribe", "Transcriber": "transcribe", "Transcript": "transcribe",
    "Bundle": "bundle", "load_bundle": "bundle", "write_bundle": "bundle",
    "DecodingConfig": "decode", "Word": "decode",
    "Stream": "stream", "StreamingConfig": "stream", "Segment": "stream",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'asr' has no attribute {name!r}")

"""asr: a small speech recognizer — MFCC features, a vanilla RNN with phone and character CTC heads, words, WER."""

__version__ = "0.1.0"

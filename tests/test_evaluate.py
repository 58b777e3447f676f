"""The figures published in RESULTS.md come back when the shipped model is evaluated again."""

import json

import pytest

from asr.data import prepare_librispeech
from asr.evaluate import evaluate
from conftest import LIBRISPEECH, REPO, TEST_DATA, needs_librispeech

PUBLISHED = REPO / "recipes" / "librispeech" / "results"


def test_evaluate_small_manifest_both_heads(tmp_path):
    for head in ("char", "phone"):
        s = evaluate(TEST_DATA / "manifest.jsonl", tmp_path / head, head=head, posteriors=1)
        assert s["utterances"] == 3 and s["wer"] == s[f"wer_{head}"]
        assert s["substitutions"] + s["deletions"] + s["insertions"] == round(s["wer"] * s["reference_words"])
        assert len(list((tmp_path / head).glob("posteriors-*.png"))) == 1


@needs_librispeech
def test_shipped_model_reproduces_published_dev_figures(tmp_path):
    prepare_librispeech(LIBRISPEECH, "test-clean", tmp_path / "dev.jsonl")
    s = evaluate(tmp_path / "dev.jsonl", tmp_path / "ev", posteriors=0)  # one pass scores both heads
    for head in ("char", "phone"):
        published = json.loads((PUBLISHED / f"dev-{head}" / "summary.json").read_text())
        assert s["utterances"] == published["utterances"] == 719
        for key in ("cer", "per", "wer_char", "wer_phone"):
            assert s[key] == pytest.approx(published[key], abs=2e-3), (head, key)
        assert published["wer"] == published[f"wer_{head}"]

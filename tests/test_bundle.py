"""Bundles: a model folder that carries its own decoding, checked file by file."""

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest

from asr.bundle import (BUNDLE_FILE, BundleError, default_bundle_path, from_checkpoint, load_bundle, resolve, sha256,
                        write_bundle)
from asr.decode import DecodingConfig
from asr.errors import ConfigError
from asr.lm import build_lm
from asr.model import load_checkpoint
from conftest import TEST_DATA

SHIPPED_MODEL = default_bundle_path() / "model.pt"
CLIP = TEST_DATA / "2416-152139-0047.opus"
WORDS = "NORTHANGER ABBEY\nKNIT TWO TOGETHER TWICE\nWHO WAS ALREADY ASLEEP IN BED\n"


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory):
    """The shipped model with a tiny bigram LM, beam search of the phone head."""
    tmp = tmp_path_factory.mktemp("b")
    (tmp / "t.txt").write_text(WORDS)
    build_lm([tmp / "t.txt"], tmp / "lm.arpa", order=2)
    return write_bundle(tmp / "bundle", SHIPPED_MODEL, "phone",
                        DecodingConfig("beam", str(tmp / "lm.arpa"), beam_size=20, lm_weight=1.5),
                        produced_by={"dev": {"wer": 0.5}})


def _copy(bundle, tmp_path):
    shutil.copytree(bundle.path, tmp_path / "copy")
    return tmp_path / "copy"


def test_written_bundle_loads_with_its_files_inside_and_provenance(small_bundle):
    b = load_bundle(small_bundle.path)
    assert b == small_bundle and b.head == "phone"
    assert b.decoding == DecodingConfig("beam", str(b.path / "lm.arpa"), beam_size=20, lm_weight=1.5)
    meta = json.loads((b.path / BUNDLE_FILE).read_text())
    assert meta["format"] == 2 and meta["runtime"] == "model.npz"
    assert set(meta["files"]) == {"model.pt", "model.npz", "lexicon.txt.gz", "lm.arpa", "lm.arpa.words.txt", "spellings.npz"}
    assert all(len(h) == 64 for h in meta["files"].values())
    assert meta["produced_by"]["dev"] == {"wer": 0.5} and meta["produced_by"]["asr"]
    # what the checkpoint says of itself (training config, epoch, the dev scores it was chosen by,
    # the checkpoints it averages) is recorded
    ckpt = load_checkpoint(SHIPPED_MODEL)
    names = {"training": "training", "epoch": "epoch", "dev": "training_dev", "soup_of": "soup_of"}
    held = [key for key in names if key in ckpt]
    assert held and all(meta["produced_by"][names[key]] == json.loads(json.dumps(ckpt[key])) for key in held)


def test_a_changed_file_is_refused(small_bundle, tmp_path):
    folder = _copy(small_bundle, tmp_path)
    with open(folder / "lm.arpa", "a") as f:
        f.write("\n")
    with pytest.raises(BundleError, match=r"lm\.arpa: sha256 differs from bundle\.json"):
        load_bundle(folder)
    load_bundle(folder, verify=False)  # the check is what refuses it


def test_a_missing_file_is_refused(small_bundle, tmp_path):
    folder = _copy(small_bundle, tmp_path)
    (folder / "lexicon.txt.gz").unlink()
    with pytest.raises(BundleError, match=r"lexicon\.txt\.gz: missing from the bundle"):
        load_bundle(folder)


def test_a_newer_format_and_bad_metadata_are_refused(small_bundle, tmp_path):
    folder = _copy(small_bundle, tmp_path)
    meta = json.loads((folder / BUNDLE_FILE).read_text())
    (folder / BUNDLE_FILE).write_text(json.dumps({**meta, "format": 3}))
    with pytest.raises(BundleError, match="bundle format 3 is newer than this asr reads"):
        load_bundle(folder)
    (folder / BUNDLE_FILE).write_text(json.dumps({**meta, "model": "../model.pt"}))
    with pytest.raises(BundleError, match="must be a file name inside the bundle"):
        load_bundle(folder)
    (folder / BUNDLE_FILE).write_text(json.dumps({**meta, "decoding": {**meta["decoding"], "beam_sise": 3}}))
    with pytest.raises(BundleError, match="beam_sise"):
        load_bundle(folder)
    (folder / BUNDLE_FILE).write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_bundle(folder)
    (folder / BUNDLE_FILE).unlink()
    with pytest.raises(BundleError, match="not a bundle"):
        load_bundle(folder)
    with pytest.raises(BundleError, match="not a checkpoint .it is a bundle"):
        from_checkpoint(small_bundle.path)


def test_options_override_and_unknown_ones_are_named(small_bundle):
    b = small_bundle.with_options(lm_weight=3.0)
    assert b.decoding.lm_weight == 3.0 and b.decoding.lm == small_bundle.decoding.lm
    assert small_bundle.with_options(decoder="greedy").decoding == DecodingConfig()
    with pytest.raises(ConfigError, match="did you mean 'beam_size'"):
        small_bundle.with_options(beam_sise=3)
    with pytest.raises(ConfigError, match="give --bundle or --model, not both"):
        resolve(small_bundle.path, SHIPPED_MODEL)


def test_a_bare_checkpoint_is_decoded_greedily_never_with_the_shipped_lm():
    notes = []
    b = resolve(model=SHIPPED_MODEL, warn=notes.append)
    assert (b.head, b.decoding) == ("char", DecodingConfig())
    assert len(notes) == 1 and "greedily" in notes[0]
    shipped = load_bundle()
    assert shipped.decoding.lm is not None and shipped.decoding.calibration is not None


def _asr(*args, **kw):
    return subprocess.run([sys.executable, "-m", "asr.cli", *map(str, args)], capture_output=True, text=True, **kw)


def test_cli_bundle_then_transcribe_and_tune_into_it(tmp_path):
    (tmp_path / "t.txt").write_text(WORDS)
    assert _asr("lm", "build", tmp_path / "t.txt", "--order", "2", "--out", tmp_path / "lm.arpa").returncode == 0
    r = _asr("bundle", SHIPPED_MODEL, "--decoder", "beam", "--lm", tmp_path / "lm.arpa", "--beam-size", "20",
             "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    assert "char head, beam search + LM" in r.stdout
    r = _asr("transcribe", "--bundle", tmp_path / "b", CLIP)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert r.stdout.split() and set(r.stdout.split()) <= set(WORDS.lower().split())  # that bundle's LM only

    # --model alone: greedy with that model, said on stderr; the same words as greedy decoding of the bundle
    bare = _asr("transcribe", "--model", SHIPPED_MODEL, CLIP)
    greedy = _asr("transcribe", "--bundle", tmp_path / "b", "--decoder", "greedy", CLIP)
    assert bare.returncode == 0 and "greedily" in bare.stderr and bare.stdout == greedy.stdout
    assert set(bare.stdout.split()) - set(WORDS.lower().split())  # not restricted to the LM's words

    r = _asr("tune", "--bundle", tmp_path / "b", "--manifest", TEST_DATA / "manifest.jsonl", "--heads", "phone",
             "--lm-weights", "0.5", "3", "--word-scores", "0", "--joint-weights", "0", "--workers", "1",
             "--out", tmp_path / "tune")
    assert r.returncode == 0, r.stderr
    best = json.loads((tmp_path / "tune" / "best.json").read_text())
    b = load_bundle(tmp_path / "b")
    assert b.head == best["head"] == "phone" and b.decoding.lm_weight == best["decoding"]["lm_weight"]
    assert b.produced_by["dev"]["wer"] == best["wer"]
    assert b.decoding.lm == str(tmp_path / "b" / "lm.arpa")  # still the bundle's own copy


def test_cli_bundle_with_a_decoding_written_by_hand_claims_no_dev_figure(tmp_path):
    """A decoding file as `asr tune` writes it, less the figure it measured (written by hand, or
    the shipped bundle's decoding for another model): the bundle takes it and records no dev WER."""
    hand = {"head": "phone", "decoding": {"decoder": "beam", "lm": None, "beam_size": 20, "lm_weight": 0.0,
                                          "word_score": 0.5}}
    (tmp_path / "hand.json").write_text(json.dumps(hand))
    r = _asr("bundle", SHIPPED_MODEL, "--decoding", tmp_path / "hand.json", "--out", tmp_path / "b")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    b = load_bundle(tmp_path / "b")
    assert b.head == "phone" and b.decoding.beam_size == 20 and b.decoding.word_score == 0.5
    assert "dev" not in b.produced_by


def test_cli_bundle_of_a_bundle_changes_options_and_records_what_it_came_from(tmp_path):
    """`asr bundle DIR --lm other` copies a bundle with another LM: its other files and decoding stay;
    its calibrator, fitted to the old LM's evidence, goes unless given again; the old dev figures
    are kept as the source's, not claimed for the copy."""
    (tmp_path / "t.txt").write_text(WORDS)
    assert _asr("lm", "build", tmp_path / "t.txt", "--order", "2", "--out", tmp_path / "lm.arpa").returncode == 0
    shipped = load_bundle()
    r = _asr("bundle", shipped.path, "--lm", tmp_path / "lm.arpa", "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    b = load_bundle(tmp_path / "b")
    assert b.decoding == dataclasses.replace(shipped.decoding, lm=str(tmp_path / "b" / "lm.arpa"), calibration=None,
                                             confidence_floor=0.0, rescore=str(tmp_path / "b" / "rnnlm.npz"))
    assert sha256(b.decoding.rescore) == sha256(shipped.decoding.rescore)  # its own copy of the RNN LM
    assert b.head == shipped.head and sha256(b.model) == sha256(shipped.model)
    source = b.produced_by["derived_from"]
    assert source["bundle"] == str(shipped.path)
    assert source["changed"] == {"lm": "lm.arpa", "calibration": None, "confidence_floor": 0.0}
    assert source.get("dev") == shipped.produced_by.get("dev") and "dev" not in b.produced_by
    kept = [k for k in ("training", "soup_of") if k in shipped.produced_by]  # what made the model
    assert kept and all(b.produced_by[k] == shipped.produced_by[k] for k in kept)
    r = _asr("bundle", shipped.path, "--lm", tmp_path / "lm.arpa", "--calibration", shipped.decoding.calibration,
             "--out", tmp_path / "c")
    assert r.returncode == 0 and load_bundle(tmp_path / "c").decoding.calibration == str(tmp_path / "c" / "calibration.json")
    r = _asr("bundle", tmp_path / "c", "--beam-size", "100", "--out", tmp_path / "d")  # a copy of a copy
    chain = load_bundle(tmp_path / "d").produced_by["derived_from"]
    assert r.returncode == 0 and chain["changed"] == {"beam_size": 100}
    assert chain["derived_from"] == load_bundle(tmp_path / "c").produced_by["derived_from"]


def test_cli_bundle_stream_stats_writes_a_stream_json_and_keeps_the_figures(tmp_path):
    """`asr bundle --stream-stats MANIFEST` adds the training statistics a stream starts from;
    the decoding is the same, so the source's dev figures stay; a bundle's stream.json is then
    kept by later copies and checked like every file."""
    from asr.stream import read_streaming

    shipped = load_bundle()
    r = _asr("bundle", shipped.path, "--stream-stats", TEST_DATA / "manifest.jsonl", "--chunk", "0.3",
             "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    b = load_bundle(tmp_path / "b")
    config, stats = read_streaming(b.streaming)
    assert b.streaming == tmp_path / "b" / "stream.json" and config.chunk == 0.3 and len(stats.mean) == 40
    assert b.produced_by["dev"] == shipped.produced_by["dev"]
    assert b.produced_by.get("derived_from") == shipped.produced_by.get("derived_from")  # no derivation of its own
    assert b.produced_by["stream_stats"]["frames"] == stats.frames > 0
    r = _asr("bundle", tmp_path / "b", "--beam-size", "100", "--out", tmp_path / "c")
    assert r.returncode == 0 and read_streaming(load_bundle(tmp_path / "c").streaming) == (config, stats)
    with open(tmp_path / "c" / "stream.json", "a") as f:
        f.write(" ")
    with pytest.raises(BundleError, match="stream.json: sha256 differs"):
        load_bundle(tmp_path / "c")


def test_bundles_by_name():
    assert load_bundle("streaming").path == load_bundle("default").path == default_bundle_path()
    assert load_bundle().streaming is not None  # the shipped bundle streams


def test_the_exported_model_gives_the_checkpoints_output_and_a_damaged_one_is_refused(small_bundle, tmp_path):
    import numpy as np
    import torch

    from asr.model import load_model
    from asr.rnn import RNNModel

    rnn = RNNModel.load(small_bundle.runtime)
    model = load_model(small_bundle.model)
    feats = np.random.default_rng(0).standard_normal((1, 90, 40)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(feats), torch.tensor([90]))
    np.testing.assert_allclose(rnn.forward(feats, np.array([90]))["phone"], ref["phone"].numpy(), atol=1e-4, rtol=0)
    folder = _copy(small_bundle, tmp_path)
    data = bytearray((folder / "model.npz").read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one weight
    (folder / "model.npz").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.npz: sha256 differs from bundle\.json") as e:
        load_bundle(folder)
    assert "\n" not in str(e.value)


def test_a_format_1_bundle_is_refused_in_one_line_until_asr_bundle_exports_it(small_bundle, tmp_path):
    from asr.cli import main

    folder = _copy(small_bundle, tmp_path)
    meta = json.loads((folder / BUNDLE_FILE).read_text())
    files = {k: v for k, v in meta["files"].items() if k != "model.npz"}
    old = {k: v for k, v in meta.items() if k != "runtime"} | {"format": 1, "files": files}
    old["decoding"] = {**old["decoding"], "precision": "auto"}  # a field format 1 had
    (folder / "model.npz").unlink()
    (folder / BUNDLE_FILE).write_text(json.dumps(old))
    with pytest.raises(BundleError, match=f"bundle format 1 has no model exported .* `asr bundle {folder} --out {folder}`"):
        load_bundle(folder)
    assert main(["bundle", str(folder), "--out", str(folder)]) == 0
    b = load_bundle(folder)
    assert b.runtime == folder.resolve() / "model.npz"
    assert b.decoding == dataclasses.replace(small_bundle.decoding, lm=str(folder.resolve() / "lm.arpa"))
    assert json.loads((folder / BUNDLE_FILE).read_text())["format"] == 2



def test_an_ensemble_travels_in_a_bundle_and_options_change_or_drop_it(small_bundle, tmp_path):
    """`asr bundle --ensemble` copies a member in (a checkpoint exported as model-2.npz); the
    bundle then recognises with both; `--ensemble none` and weights change that for one run."""
    import numpy as np

    from asr.cli import main
    from asr.model import AcousticModel, export
    from asr.rnn import Ensemble, EnsembleConfig, RNNModel
    from asr.transcribe import Transcriber, load_acoustic_model

    import torch

    torch.manual_seed(0)
    small = dataclasses.replace(RNNModel.load(small_bundle.runtime).config, hidden=16, layers=2, inter_layer=1)
    other = export(AcousticModel(small).eval())  # the same features and frames, other (random) weights
    other.save(tmp_path / "other.npz")
    assert small_bundle.with_options(ensemble=[str(tmp_path / "other.npz")]).ensemble.rule == "nbest"  # the default
    assert main(["bundle", str(small_bundle.path), "--ensemble", str(tmp_path / "other.npz"), "--ensemble-weights",
                 "3", "1", "--ensemble-rule", "mean", "--out", str(tmp_path / "b")]) == 0
    b = load_bundle(tmp_path / "b")
    assert b.ensemble == EnsembleConfig((str(tmp_path / "b" / "model-2.npz"),), (3.0, 1.0), "mean")
    meta = json.loads((tmp_path / "b" / BUNDLE_FILE).read_text())
    assert meta["ensemble"] == {"members": ["model-2.npz"], "weights": [3.0, 1.0], "rule": "mean"}
    assert "model-2.npz" in meta["files"]
    assert meta["produced_by"]["derived_from"]["changed"]["ensemble"]["members"] == ["other.npz"]  # what was added
    model = load_acoustic_model(b)
    assert isinstance(model, Ensemble) and len(model.models) == 2
    feats = np.random.default_rng(0).standard_normal((1, 60, 40)).astype(np.float32)
    alone, rand = (RNNModel.load(p).forward(feats, np.array([60])) for p in (b.runtime, tmp_path / "other.npz"))
    np.testing.assert_allclose(model.forward(feats, np.array([60]))["phone"],
                               np.log(0.75 * np.exp(alone["phone"]) + 0.25 * np.exp(rand["phone"])), atol=1e-5)
    # for one run: no ensemble; the member alone (weights 0 and 1)
    assert isinstance(load_acoustic_model(b.with_options(ensemble="none")), RNNModel)
    assert b.with_options(ensemble="none").ensemble == EnsembleConfig((), (), "mean")
    only = load_acoustic_model(b.with_options(ensemble_weights=[0, 1]))
    np.testing.assert_allclose(only.forward(feats, np.array([60]))["phone"], rand["phone"], atol=1e-5)
    text = Transcriber(b.with_options(ensemble_weights=[1, 0])).transcribe(CLIP).text
    assert text == Transcriber(small_bundle).transcribe(CLIP).text != ""
    # a damaged member is refused as any bundle file is; a missing one for a run is named
    (tmp_path / "b" / "model-2.npz").write_bytes(b"junk")
    with pytest.raises(BundleError, match=r"model-2\.npz: sha256 differs"):
        load_bundle(tmp_path / "b")
    with pytest.raises(ConfigError, match="nothere.npz: ensemble member not found"):
        small_bundle.with_options(ensemble=[str(tmp_path / "nothere.npz")])


def test_a_bundle_is_not_written_with_a_member_of_other_features(small_bundle, tmp_path):
    import torch

    from asr.features import FeatureConfig
    from asr.model import AcousticModel, export
    from asr.rnn import ModelConfig

    torch.manual_seed(0)
    export(AcousticModel(ModelConfig(hidden=8, layers=2, features=FeatureConfig(n_mfcc=13))).eval()).save(
        tmp_path / "mfcc13.npz")
    b = small_bundle.with_options(ensemble=[str(tmp_path / "mfcc13.npz")])
    with pytest.raises(BundleError, match="member 2 differs from the first in features"):
        write_bundle(tmp_path / "b", b.model, b.head, b.decoding, b.lexicon, ensemble=b.ensemble)


def test_a_narrowband_model_travels_in_a_bundle_with_its_stream_statistics(small_bundle, tmp_path):
    """`asr bundle --narrowband MODEL --narrowband-stats MANIFEST` copies a model for 8 kHz audio in
    (a checkpoint exported as narrowband.npz) with the feature statistics of the manifest's audio;
    `asr tune` into it and another `asr bundle` keep it; a model of other features is refused."""
    import numpy as np
    import torch

    from asr.cli import main
    from asr.features import FeatureConfig
    from asr.model import AcousticModel, export, load_model, save_checkpoint
    from asr.rnn import ModelConfig, RNNModel
    from asr.stream import read_streaming

    torch.manual_seed(0)
    small = dataclasses.replace(RNNModel.load(small_bundle.runtime).config, hidden=16, layers=2, inter_layer=1)
    save_checkpoint(tmp_path / "nb.pt", AcousticModel(small), epoch=7, dev={"per": 0.5})
    assert main(["bundle", str(small_bundle.path), "--narrowband", str(tmp_path / "nb.pt"), "--narrowband-stats",
                 str(TEST_DATA / "manifest.jsonl"), "--out", str(tmp_path / "b")]) == 0
    b = load_bundle(tmp_path / "b")
    assert (b.narrowband, b.narrowband_streaming) == (tmp_path / "b" / "narrowband.npz",
                                                      tmp_path / "b" / "narrowband-stream.json")
    meta = json.loads((tmp_path / "b" / BUNDLE_FILE).read_text())
    assert meta["narrowband"] == {"runtime": "narrowband.npz", "streaming": "narrowband-stream.json"}
    assert {"narrowband.npz", "narrowband-stream.json"} <= set(meta["files"])
    # the bundle's own figures hold (16 kHz audio is heard as before); what the model was made from is recorded
    assert "derived_from" not in meta["produced_by"] and meta["produced_by"]["dev"] == {"wer": 0.5}
    assert meta["produced_by"]["narrowband"]["model"] == str(tmp_path / "nb.pt")
    assert meta["produced_by"]["narrowband"]["stream_stats"]["manifest"] == str(TEST_DATA / "manifest.jsonl")
    feats = np.random.default_rng(0).standard_normal((1, 60, 40)).astype(np.float32)
    np.testing.assert_allclose(RNNModel.load(b.narrowband).forward(feats, np.array([60]))["phone"],
                               export(load_model(tmp_path / "nb.pt")).forward(feats, np.array([60]))["phone"],
                               atol=1e-5)
    stats = read_streaming(b.narrowband_streaming)[1]
    assert stats is not None and stats.frames > 0
    # the bundle's own decoding and files are unchanged; written again, the model stays
    assert b.decoding.beam_size == small_bundle.decoding.beam_size and b.head == small_bundle.head
    assert main(["bundle", str(tmp_path / "b"), "--beam-size", "10", "--out", str(tmp_path / "c")]) == 0
    assert load_bundle(tmp_path / "c").narrowband == tmp_path / "c" / "narrowband.npz"
    assert main(["tune", "--bundle", str(tmp_path / "c"), "--manifest", str(TEST_DATA / "manifest.jsonl"), "--heads",
                 "phone", "--lm-weights", "1", "--word-scores", "0", "--joint-weights", "0", "--workers", "1",
                 "--out", str(tmp_path / "tune")]) == 0
    tuned = load_bundle(tmp_path / "c")
    assert (tuned.narrowband, tuned.narrowband_streaming) == (tmp_path / "c" / "narrowband.npz",
                                                              tmp_path / "c" / "narrowband-stream.json")
    assert main(["bundle", str(tmp_path / "b"), "--narrowband", str(tmp_path / "nb.pt"), "--narrowband-int8",
                 "--out", str(tmp_path / "i8")]) == 0  # stored as int8 (asr.rnn's format 2)
    assert json.loads(str(np.load(tmp_path / "i8" / "narrowband.npz")["__config__"]))["format"] == 2
    # the same model stored again (as int8, with statistics): what it was made from stays
    assert main(["bundle", str(tmp_path / "b"), "--narrowband-int8", "--narrowband-stats", str(TEST_DATA / "manifest.jsonl"),
                 "--out", str(tmp_path / "i8b")]) == 0
    record = json.loads((tmp_path / "i8b" / BUNDLE_FILE).read_text())["produced_by"]["narrowband"]
    made = meta["produced_by"]["narrowband"]
    assert (record["model"], record["epoch"], record["dev"]) == (str(tmp_path / "nb.pt"), 7, {"per": 0.5})
    assert record["int8"] and record["stream_stats"]["manifest"] == str(TEST_DATA / "manifest.jsonl")
    assert main(["bundle", str(tmp_path / "b"), "--narrowband", "none", "--out", str(tmp_path / "d")]) == 0
    assert load_bundle(tmp_path / "d").narrowband is None
    assert "narrowband" not in json.loads((tmp_path / "d" / BUNDLE_FILE).read_text())
    assert "narrowband" not in json.loads((tmp_path / "d" / BUNDLE_FILE).read_text())["produced_by"]
    # one search and one calibrator serve both: a model of other features is refused
    export(AcousticModel(ModelConfig(hidden=8, layers=2, features=FeatureConfig(n_mfcc=13))).eval()).save(
        tmp_path / "mfcc13.npz")
    with pytest.raises(BundleError, match="narrow-band model differs from the first in features"):
        write_bundle(tmp_path / "e", b.model, b.head, b.decoding, b.lexicon, narrowband=tmp_path / "mfcc13.npz")
    with pytest.raises(ConfigError, match="nothere.npz: narrow-band model not found"):
        b.with_options(narrowband=str(tmp_path / "nothere.npz"))


"""A model that travels with its decoding: one folder, like a Vosk model folder or a torchaudio bundle.

A bundle holds the acoustic model (the training checkpoint, and its weights exported for
recognition without torch), the pronunciation lexicon, the word LM (with its word list), the
confidence calibrator and ``bundle.json``, which says how they are used together::

    {"format": 2,
     "model": "model.pt", "runtime": "model.npz", "lexicon": "lexicon.txt.gz",
     "head": "phone",                                    # which CTC head gives the words
     "decoding": {"decoder": "beam", "lm": "lm.arpa.gz", "calibration": "calibration.json", ...},
     "streaming": "stream.json",                        # optional: how it streams (asr.stream)
     "g2p": "g2p.npz",                                   # optional: pronunciations of added words (asr.g2p)
     "ensemble": {"members": ["model-2.npz"], "weights": [1, 0.5], "rule": "nbest"},  # optional: more models (asr.rnn.Ensemble)
     "narrowband": {"runtime": "narrowband.npz", "streaming": "narrowband-stream.json"},  # optional: for 8 kHz audio
     "files": {"model.pt": "<sha256>", ...},             # every file above, and the LM's word list
     "produced_by": {"asr": "0.1.0", "commit": "...", "training": {...}, "dev": {"wer": 0.28, ...}}}

``decoding`` holds :class:`asr.decode.DecodingConfig`'s fields, its files named relative to the
folder. ``asr/assets`` is the default bundle. ``asr bundle`` (the recipes' last stage) writes one
from a checkpoint and a tuned decoding; ``asr tune --bundle`` and ``asr calibrate --bundle``
write their results into one. A file whose sha256 differs from ``bundle.json``, a missing file
or a format newer than this ``asr`` reads is refused with one clear error.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .ctc import check_head
from .decode import DecodingConfig
from .errors import ConfigError, UserError
from .io import atomic_write_text, sha256
from .rnn import EnsembleConfig

# bundle.json's format version: readers refuse others. 2: the model exported for the torch-free
# runtime ("runtime") beside the checkpoint; a format 1 bundle has only the checkpoint.
FORMAT = 2
BUNDLE_FILE = "bundle.json"
# Names chosen by `write_bundle` for the files it copies in (the LM keeps its suffix: .arpa, .arpa.gz, .bin).
MODEL_FILE, RUNTIME_FILE, CALIBRATION_FILE, STREAMING_FILE = "model.pt", "model.npz", "calibration.json", "stream.json"
SPELLINGS_FILE = "spellings.npz"  # the beam search's words as token ids (asr.search.save_spellings)
NARROWBAND_FILE, NARROWBAND_STREAMING_FILE = "narrowband.npz", "narrowband-stream.json"
# Bundles by name: ``asr.load("streaming")``. The shipped model streams latency-controlled
# (asr.stream), so both names are the shipped folder, which carries a stream.json.
NAMED = {"default": "", "streaming": ""}


class BundleError(UserError):
    """A bundle folder that cannot be used as it is; the message names the folder and the file."""


@dataclass(frozen=True)
class Bundle:
    """A model with everything its decoding needs, as absolute paths.

    ``decoding.lm`` and ``decoding.calibration`` are absolute paths (or ``None``). ``path`` is the
    folder, ``None`` for a bare checkpoint (see :func:`from_checkpoint`). ``produced_by`` is
    bundle.json's record of what made it (training config, commit, dev figures). ``runtime`` is
    the exported model recognition reads; ``None`` for a bare checkpoint (exported in memory,
    which needs torch) or a bundle read to be written again (``load_bundle(upgrade=True)``).

    >>> b = asr.load_bundle()
    >>> b.head, b.decoding.decoder, b.runtime.name
    ('phone', 'beam', 'model.npz')
    >>> b.with_options(decoder="greedy").decoding.decoder
    'greedy'
    """

    model: Path
    lexicon: Path
    head: str = "char"
    decoding: DecodingConfig = DecodingConfig()
    path: Path | None = None
    produced_by: dict[str, Any] = field(default_factory=dict, compare=False)
    streaming: Path | None = None  # stream.json: the streaming config and training feature statistics
    runtime: Path | None = None  # model.npz: the model's weights for asr.rnn
    spellings: Path | None = None  # spellings.npz: the search's words, saved (used where its key fits)
    g2p: Path | None = None  # g2p.npz: pronunciations of words the lexicon lacks (asr.g2p)
    ensemble: EnsembleConfig = EnsembleConfig()  # other exported models heard beside this one (absolute paths)
    # The model that hears audio recorded at 8 kHz or less (asr.features.NARROWBAND_RATE) instead of
    # `runtime`, and a stream.json with the feature statistics of such audio for streaming it.
    # Same features, frames and vocabularies as `runtime`, so the one search and calibrator serve both.
    narrowband: Path | None = None  # narrowband.npz
    narrowband_streaming: Path | None = None  # narrowband-stream.json

    def with_options(self, head: str | None = None, decoder: str | None = None, ensemble: Any = None,
                     ensemble_weights: Any = None, ensemble_rule: str | None = None, narrowband: Any = None,
                     **changes: Any) -> "Bundle":
        """This bundle with some decoding options changed (``None`` values are left as they are).

        ``decoder="greedy"`` is plain best-path decoding; ``decoder="beam"`` turns a greedy
        decoding into beam search; ``changes`` are :class:`DecodingConfig` fields, with
        ``lm="none"`` for no LM and ``calibration="none"`` for raw confidences. ``ensemble``: other
        models to hear beside the bundle's (files, see :class:`~asr.rnn.EnsembleConfig`; ``"none"``
        or ``[]``: the bundle's own model alone), ``ensemble_weights`` and ``ensemble_rule`` how
        (the bundle's, if it has members, or :class:`~asr.rnn.EnsembleConfig`'s defaults). ``narrowband``:
        the model for audio recorded at 8 kHz or less (a file; ``"none"``: the bundle's model hears all
        audio). A calibrator knows
        the words of its own head's search with its own LM: another head, LM or a lexicon-free
        search drops it (unless one is given), since its inputs would mean something else.
        """
        known = {f.name for f in dataclasses.fields(DecodingConfig)}
        for name in changes:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known | {"head", "decoder"}), n=1)
                raise ConfigError(f"unknown decoding option {name!r}" + (f"; did you mean {close[0]!r}?" if close
                                                                          else f"; options: head, {', '.join(sorted(known))}"))
        if head is not None:
            check_head(head)
        config = self.decoding
        if decoder == "greedy":
            config = DecodingConfig()
        elif decoder is not None and decoder != config.decoder:
            config = dataclasses.replace(config, decoder=decoder)  # (a value that is neither is refused there)
        changes = {k: v for k, v in changes.items() if v is not None}
        for name in ("lm", "calibration", "rescore"):
            if changes.get(name) == "none":
                changes[name] = None
            elif changes.get(name) is not None:
                changes[name] = str(Path(changes[name]).resolve())
        if changes.get("grammar") is not None:
            changes["grammar"] = str(Path(changes["grammar"]).resolve())
        if "calibration" in changes and changes["calibration"] is None and "confidence_floor" not in changes:
            changes["confidence_floor"] = 0.0  # no calibrator, no floor on its scale
        if (head not in (None, self.head) or ("lm" in changes and changes["lm"] != config.lm)
                or changes.get("lexicon_free")) and "calibration" not in changes:
            config = dataclasses.replace(config, calibration=None, confidence_floor=0.0)  # the floor is on its scale
        narrow = {}
        if narrowband == "none":
            narrow = {"narrowband": None, "narrowband_streaming": None}
        elif narrowband is not None:
            if not Path(narrowband).is_file():
                raise ConfigError(f"{narrowband}: narrow-band model not found (an exported model .npz or a checkpoint .pt)")
            narrow = {"narrowband": Path(narrowband).resolve()}
        return dataclasses.replace(self, head=head or self.head, decoding=dataclasses.replace(config, **changes),
                                   ensemble=self._ensemble(ensemble, ensemble_weights, ensemble_rule), **narrow)

    def _ensemble(self, members: Any, weights: Any, rule: str | None) -> EnsembleConfig:
        """The bundle's :class:`EnsembleConfig` with what :meth:`with_options` was given changed."""
        e = self.ensemble
        if members is not None:
            members = [] if members == "none" or list(members) == ["none"] else [str(m) for m in members]
            for m in members:
                if not Path(m).is_file():
                    raise ConfigError(f"{m}: ensemble member not found (an exported model .npz or a checkpoint .pt)")
            weights_kept = () if len(members) != len(e.members) else e.weights
            e = EnsembleConfig(tuple(str(Path(m).resolve()) for m in members), weights_kept, e.rule)
        return EnsembleConfig(e.members, tuple(float(w) for w in weights) if weights is not None else e.weights,
                              rule or e.rule)

    def describe(self) -> str:
        """One line: the head and decoding, e.g. ``phone head, beam search + LM + joint rescoring``."""
        d = self.decoding
        if d.decoder == "greedy":
            how = "greedy"
        else:
            how = ("lexicon-free beam search" if d.lexicon_free else "beam search" + (" + LM" if d.lm else " + lexicon")
                   + (" + joint rescoring" if d.joint_weight else ""))
        return f"{self.head} head, {how}" + (", calibrated confidences" if d.calibration else "")


def default_bundle_path() -> Path:
    """The bundle shipped inside the package (``asr/assets``)."""
    return Path(str(resources.files("asr") / "assets"))


def load_bundle(path: str | Path | None = None, verify: bool = True, upgrade: bool = False) -> Bundle:
    """The bundle in folder ``path`` (default: the shipped one), its files checked against bundle.json.

    ``verify=False`` skips the sha256 of every file (they are still required to exist).
    Raises :class:`BundleError` naming the folder and file for a folder without bundle.json, a
    bundle.json that is not valid, a format other than :data:`FORMAT`, or a listed file that is
    missing or whose sha256 differs. ``upgrade=True`` also reads a format 1 bundle (no exported
    model), for ``asr bundle`` to write it again.

    >>> asr.load_bundle().path.name                  # the shipped one
    'assets'
    >>> asr.load_bundle("no-such-folder")
    Traceback (most recent call last):
    asr.bundle.BundleError: no-such-folder: bundle folder not found
    """
    if path is not None and str(path) in NAMED and not Path(path).exists():
        path = default_bundle_path() / NAMED[str(path)]
    folder = default_bundle_path() if path is None else Path(path)
    meta_path = folder / BUNDLE_FILE
    if not folder.exists():
        raise BundleError(f"{folder}: bundle folder not found")
    if not folder.is_dir():
        raise BundleError(f"{folder}: a bundle is a folder holding {BUNDLE_FILE}, not a file "
                          f"(for a bare checkpoint use --model; `asr bundle` makes a bundle of one)")
    if not meta_path.is_file():
        raise BundleError(f"{folder}: not a bundle (no {BUNDLE_FILE}; `asr bundle` writes one)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"{meta_path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path}: expected a JSON object")
    version = meta.get("format")
    if not isinstance(version, int):
        raise BundleError(f"{meta_path}: no format version")
    if version > FORMAT:
        raise BundleError(f"{meta_path}: bundle format {version} is newer than this asr reads ({FORMAT}); "
                          f"upgrade asr to use it")
    if version < FORMAT and not (upgrade and version == 1):
        raise BundleError(f"{meta_path}: bundle format {version} has no model exported for recognition without "
                          f"torch; `asr bundle {folder} --out {folder}` adds it (with the training extra: "
                          f"pip install 'asr[train]')")
    files = meta.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{meta_path}: no 'files' with the sha256 of each file")

    def member(name: Any, what: str) -> Path:
        if not isinstance(name, str) or not name or Path(name).name != name:
            raise BundleError(f"{meta_path}: {what} must be a file name inside the bundle, not {name!r}")
        if name not in files:
            raise BundleError(f"{meta_path}: {what} {name!r} is not listed in 'files'")
        return (folder / name).resolve()

    # Recognition reads the exported model, not the training checkpoint: hashing the checkpoint
    # (24 MB) is left to what reads it (`asr bundle` compares it before exporting it again)
    checkpoint = meta.get("model") if version >= 2 else None
    for name, digest in files.items():
        p = folder / name
        if Path(name).name != name:
            raise BundleError(f"{meta_path}: {name!r} is not a file name inside the bundle")
        if not p.is_file():
            raise BundleError(f"{p}: missing from the bundle ({BUNDLE_FILE} lists it)")
        if verify and name != checkpoint and sha256(p) != digest:
            raise BundleError(f"{p}: sha256 differs from {BUNDLE_FILE}'s: the file was changed or damaged after the "
                              f"bundle was written (rebuild it with `asr bundle`)")
    try:
        fields = dict(meta.get("decoding") or {})
        if version == 1:  # read to be written again: format 1 chose the model's arithmetic, asr.rnn's is fp32
            fields.pop("precision", None)
        for name in ("lm", "calibration", "grammar", "rescore"):
            if fields.get(name):
                fields[name] = str(member(fields[name], f"decoding.{name}"))
        words = f"{Path(fields['lm']).name}.words.txt" if fields.get("lm") else None
        if words and (folder / words).exists() and words not in files:
            raise BundleError(f"{meta_path}: the LM's word list {words} is not listed in 'files'")
        decoding = DecodingConfig(**fields)
    except (TypeError, ConfigError) as e:
        raise BundleError(f"{meta_path}: decoding: {e}") from None
    try:
        head = check_head(meta.get("head", "char"), str(meta_path))
    except ConfigError as e:
        raise BundleError(str(e)) from None
    streaming = member(meta["streaming"], "streaming") if meta.get("streaming") else None
    runtime = member(meta.get("runtime"), "runtime") if version >= 2 else None
    spellings = member(meta["spellings"], "spellings") if meta.get("spellings") else None
    g2p = member(meta["g2p"], "g2p") if meta.get("g2p") else None
    ensemble = EnsembleConfig()
    if meta.get("ensemble"):
        e = meta["ensemble"]
        try:
            members = [str(member(name, "ensemble member")) for name in e["members"]]
            ensemble = EnsembleConfig(tuple(members), tuple(float(w) for w in e.get("weights") or ()),
                                      e.get("rule", EnsembleConfig.rule))
        except (TypeError, KeyError, ValueError, ConfigError) as err:
            raise BundleError(f"{meta_path}: ensemble: {err}") from None
    narrow = meta.get("narrowband") or {}
    if not isinstance(narrow, dict) or (narrow and "runtime" not in narrow):
        raise BundleError(f"{meta_path}: narrowband must be {{\"runtime\": FILE, \"streaming\": FILE}}, not {narrow!r}")
    return Bundle(member(meta.get("model"), "model"), member(meta.get("lexicon"), "lexicon"), head, decoding,
                  folder.resolve(), meta.get("produced_by") or {}, streaming, runtime, spellings, g2p, ensemble,
                  member(narrow["runtime"], "narrowband runtime") if narrow else None,
                  member(narrow["streaming"], "narrowband streaming") if narrow.get("streaming") else None)


def from_checkpoint(model: str | Path, lexicon: str | Path | None = None) -> Bundle:
    """A bare checkpoint as a bundle: greedy decoding of the character head, raw confidences.

    Nothing tuned for another model (the shipped LM weights, calibrator) goes with it; give
    decoding options, or make a bundle (:func:`write_bundle`), for more.
    """
    model = Path(model)
    if model.is_dir():
        raise BundleError(f"{model}: is a folder, not a checkpoint"
                          + (" (it is a bundle: give it as --bundle)" if (model / BUNDLE_FILE).is_file() else ""))
    try:
        from .model import load_checkpoint
    except ImportError:
        raise BundleError(f"{model}: a bare checkpoint needs PyTorch to read (pip install 'asr[train]'); a bundle "
                          f"(`asr bundle`) carries the model exported for recognition without it") from None
    load_checkpoint(model)  # a missing or unreadable file is reported now, before anything is said about it
    lexicon = Path(lexicon) if lexicon else default_bundle_path() / "lexicon.txt.gz"
    return Bundle(model.resolve(), lexicon.resolve(), "char", DecodingConfig())


def resolve(bundle: str | Path | None = None, model: str | Path | None = None, lexicon: str | Path | None = None,
            warn=None, upgrade: bool = False, **options: Any) -> Bundle:
    """What a command decodes with: ``bundle`` (default: the shipped one; a name of :data:`NAMED`, a
    folder), or a bare ``model`` checkpoint decoded greedily (said through ``warn``, e.g. on
    stderr), with ``options`` (see :meth:`Bundle.with_options`) and another ``lexicon`` if given.
    The one resolver of the CLI and of :func:`asr.load`. ``upgrade``: see :func:`load_bundle`."""
    if bundle is not None and model is not None:
        raise ConfigError("give --bundle or --model, not both (a bundle holds its model)")
    if model is not None:
        b = from_checkpoint(model, lexicon)
        if warn is not None and not any(options.get(k) for k in ("decoder", "lm", "head")):
            warn(f"note: {model} is a bare checkpoint: decoding it greedily with its char head (no LM, raw "
                 f"confidences); `asr bundle` makes a bundle that carries its own tuned decoding")
    else:
        b = load_bundle(bundle, upgrade=upgrade)
        if lexicon is not None:
            b = dataclasses.replace(b, lexicon=Path(lexicon).resolve())
    return b.with_options(**options)


def _commit() -> str | None:
    """The git commit of the working directory, if it is a clone."""
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _copy_in(src: str | Path, folder: Path, name: str) -> str:
    """Copy ``src`` into ``folder`` as ``name`` (atomically; nothing to do if it is that file already)."""
    dst = folder / name
    src = Path(src)
    if not src.is_file():
        raise BundleError(f"{src}: file not found")
    if dst.exists() and dst.resolve() == src.resolve():
        return name
    tmp = folder / f".{name}.tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return name


def write_bundle(out: str | Path, model: str | Path, head: str, decoding: DecodingConfig,
                 lexicon: str | Path | None = None, produced_by: dict[str, Any] | None = None,
                 streaming: str | Path | None = None, g2p: str | Path | None = None,
                 ensemble: EnsembleConfig = EnsembleConfig(), narrowband: str | Path | None = None,
                 narrowband_streaming: str | Path | None = None, narrowband_int8: bool = False) -> Bundle:
    """Write a bundle folder ``out``: ``model`` (a checkpoint), ``lexicon`` (default: the shipped
    one), the LM and calibrator that ``decoding`` names (copied in, with the LM's word list),
    ``streaming`` (a stream.json, see :func:`asr.stream.write_streaming`), ``g2p`` (a G2P model,
    :mod:`asr.g2p`), ``ensemble``'s members (exported as ``model-2.npz``, ...), ``narrowband`` (a model for
    8 kHz audio, exported as ``narrowband.npz``; ``narrowband_int8``: its weight matrices stored as
    int8, :meth:`asr.rnn.RNNModel.save`) with ``narrowband_streaming`` (a stream.json of 8 kHz
    training audio's statistics), the model exported for
    recognition (:func:`asr.model.export`: needs torch) and bundle.json last, with the sha256 of
    each file. ``out`` may be an existing bundle whose files are given again (that is how tune
    and calibrate write into one).

    ``produced_by`` is merged into what is recorded: the asr version, the git commit, and the
    checkpoint's training config and dev scores where it holds them.

    The shipped bundle written again with a narrower beam (exporting the checkpoint needs torch):

    >>> import dataclasses, tempfile
    >>> b = asr.load_bundle()
    >>> out = asr.write_bundle(tempfile.mkdtemp(), b.model, b.head, dataclasses.replace(b.decoding, beam_size=500),
    ...                        b.lexicon, {"note": "a narrower beam"}, b.streaming, b.g2p)
    >>> asr.load(out.path).decoding.beam_size
    500
    """
    from . import __version__

    check_head(head)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    lexicon = Path(lexicon) if lexicon else default_bundle_path() / "lexicon.txt.gz"
    names = {"model": _copy_in(model, folder, MODEL_FILE),
             "lexicon": _copy_in(lexicon, folder, "lexicon" + "".join(lexicon.suffixes[-2:]))}
    fields = dataclasses.asdict(decoding)
    if decoding.lm:
        lm = Path(decoding.lm)
        fields["lm"] = _copy_in(lm, folder, "lm" + "".join(lm.suffixes[-2:]))
        if Path(f"{lm}.words.txt").is_file():
            _copy_in(f"{lm}.words.txt", folder, f"{fields['lm']}.words.txt")
    if decoding.calibration:
        fields["calibration"] = _copy_in(decoding.calibration, folder, CALIBRATION_FILE)
    if decoding.rescore:
        from .rnnlm import RNNLM

        RNNLM(decoding.rescore)  # a bundle is not written with an RNN LM it cannot read
        fields["rescore"] = _copy_in(decoding.rescore, folder, "rnnlm.npz")
    if decoding.grammar:
        decoding.load_grammar()  # a bundle is not written with a grammar it cannot read
        fields["grammar"] = _copy_in(decoding.grammar, folder, "grammar.gram")
    if streaming:
        names["streaming"] = _copy_in(streaming, folder, STREAMING_FILE)
    if g2p:
        from .g2p import G2P

        G2P.load(g2p)  # a bundle is not written with a G2P model it cannot read
        names["g2p"] = _copy_in(g2p, folder, "g2p.npz")
    members = [_member_in(m, folder, f"model-{i}.npz") for i, m in enumerate(ensemble.members, 2)]
    narrow = {}
    if narrowband:
        narrow["runtime"] = _member_in(narrowband, folder, NARROWBAND_FILE, narrowband_int8)
        if narrowband_streaming:
            narrow["streaming"] = _copy_in(narrowband_streaming, folder, NARROWBAND_STREAMING_FILE)
    runtime = folder / RUNTIME_FILE
    names["runtime"] = RUNTIME_FILE
    if decoding.decoder == "beam" and not decoding.lexicon_free:  # the search's words, saved: a quick start
        from .search import save_spellings, spell_vocabulary, spellings_key
        from .text import Lexicon

        lex = Lexicon.load(folder / names["lexicon"])
        lm = str(folder / fields["lm"]) if fields.get("lm") else None
        save_spellings(folder / SPELLINGS_FILE, spell_vocabulary(head, lex, lm), spellings_key(head, lex, lm))
        names["spellings"] = SPELLINGS_FILE
    listed = [*names.values(), *members, *narrow.values()] + [fields[k] for k in ("lm", "calibration", "grammar", "rescore")
                                            if fields.get(k)]
    if fields.get("lm") and (folder / f"{fields['lm']}.words.txt").is_file():
        listed.append(f"{fields['lm']}.words.txt")
    record: dict[str, Any] = {"asr": __version__, "commit": _commit()}
    if not (runtime.is_file() and _listed(folder, RUNTIME_FILE) == sha256(runtime)
            and _listed(folder, MODEL_FILE) == sha256(folder / MODEL_FILE)):
        # a checkpoint this bundle has not exported yet (tune and calibrate, which write into a
        # bundle with its own checkpoint, need no torch): export it, record what it holds
        try:
            from .model import export, load_checkpoint, load_model
        except ImportError:
            raise BundleError(f"{folder / MODEL_FILE}: exporting a checkpoint for recognition needs PyTorch: "
                              f"pip install 'asr[train]'") from None

        ckpt = load_checkpoint(folder / MODEL_FILE)
        for key, name in (("training", "training"), ("epoch", "epoch"), ("dev", "training_dev"), ("soup_of", "soup_of")):
            if key in ckpt:  # the training config, the dev scores it chose the checkpoint by, what was averaged
                record[name] = ckpt[key]
        export(load_model(folder / MODEL_FILE)).save(runtime)
    old = folder / BUNDLE_FILE
    if old.is_file():  # keep what an earlier writer recorded (e.g. the tuning's dev figures)
        try:
            record = {**json.loads(old.read_text(encoding="utf-8")).get("produced_by", {}), **record}
        except (OSError, ValueError, AttributeError):
            pass
    record.update(produced_by or {})
    if members:
        from .rnn import Ensemble, RNNModel

        try:  # a bundle is not written with members that cannot be heard beside its model
            Ensemble([RNNModel.load(runtime), *(RNNModel.load(folder / m) for m in members)], ensemble)
        except ConfigError as e:
            raise BundleError(f"{folder}: {e}") from None
        names["ensemble"] = {"members": members, "weights": list(ensemble.weights), "rule": ensemble.rule}
    if narrow:
        from .rnn import RNNModel, check_same_frames

        try:  # one search and calibrator serve both models
            check_same_frames(RNNModel.load(runtime).config, RNNModel.load(folder / narrow["runtime"]).config,
                              "the narrow-band model", "a bundle's models")
        except ConfigError as e:
            raise BundleError(f"{folder}: {e}") from None
        names["narrowband"] = narrow
    meta = {"format": FORMAT, **names, "head": head, "decoding": fields,
            "files": {name: sha256(folder / name) for name in sorted(set(listed))}, "produced_by": record}
    atomic_write_text(old, json.dumps(meta, indent=2) + "\n")
    return load_bundle(folder, verify=False)


def exported_model(path: str | Path):
    """An exported model (``.npz``, read without torch) or a checkpoint (``.pt``) exported in memory
    (that needs torch: the training extra), as an :class:`asr.rnn.RNNModel`."""
    from .rnn import RNNModel

    if Path(path).suffix != ".pt":
        return RNNModel.load(path)
    try:
        from .model import export, load_model
    except ImportError:
        raise BundleError(f"{path}: a checkpoint needs PyTorch to read (pip install 'asr[train]'); "
                          f"`asr bundle` exports it for recognition without it") from None
    return export(load_model(path))


def _member_in(src: str | Path, folder: Path, name: str, int8: bool = False) -> str:
    """An ensemble member or narrow-band model into ``folder`` as ``name``: an exported model copied
    (after reading it: a bundle is not written with a member it cannot read), a checkpoint exported;
    ``int8``: written with int8 weight matrices (:meth:`asr.rnn.RNNModel.save`)."""
    model = exported_model(src)
    if Path(src).suffix == ".pt" or int8:
        model.save(folder / name, int8=int8)
        return name
    return _copy_in(src, folder, name)


def _listed(folder: Path, name: str) -> str | None:
    """The sha256 that ``folder``'s bundle.json lists for ``name``, if any."""
    try:
        return json.loads((folder / BUNDLE_FILE).read_text(encoding="utf-8"))["files"].get(name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def bundle_summary(bundle: Bundle) -> str:
    """A few lines about a bundle, for ``asr bundle`` and ``asr transcribe --debug``-style output."""
    lines = [f"{bundle.path or bundle.model}: {bundle.describe()}"]
    dev = bundle.produced_by.get("dev")
    if isinstance(dev, dict) and dev:
        lines.append("dev: " + ", ".join(f"{k}={v}" for k, v in dev.items()))
    return "\n".join(lines)



def read_tuned(path: str | Path) -> tuple[str, DecodingConfig, dict[str, Any]]:
    """``(head, decoding, record)`` from ``asr tune``'s best.json (``{"head", "decoding", "wer", ...}``)."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        head, decoding = record["head"], DecodingConfig(**record["decoding"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a decoding as `asr tune` writes it ({type(e).__name__}: {e})") from None
    return check_head(head, str(path)), decoding, record

"""An 8 kHz copy of a manifest, for a model that hears narrow-band audio (telephone, IVR, FSDD):

    python recipes/librispeech/local/narrowband.py data/librispeech/dev.jsonl --out data/librispeech/dev-8k.jsonl

Each utterance is read as recognition reads it (``asr.features.load_audio``: mono, 16 kHz),
resampled to 8 kHz with the runtime's own band-limited resampler (nothing above 4 kHz survives)
and written as 16-bit FLAC next to ``--out`` (``8k/<id>.flac``), as an 8 kHz recording is stored.
Training and evaluation read these files back at 16 kHz, the way every 8 kHz file reaches the
model. Files already written are kept (a killed run goes on where it stopped); the manifest is
written last, whole.
"""

import argparse
import dataclasses
import os
from pathlib import Path

import soundfile as sf

from asr.features import SAMPLE_RATE, load_audio, resample
from asr.manifest import read_manifest, write_manifest

NARROW_RATE = 8000  # Hz: telephone and IVR recordings, FSDD; a band up to 4 kHz

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("manifest", type=Path, help="a manifest of 16 kHz audio (asr prepare)")
ap.add_argument("--out", type=Path, required=True, help="the 8 kHz manifest to write")
args = ap.parse_args()

audio_dir = args.out.parent / (args.out.stem + "-audio")
audio_dir.mkdir(parents=True, exist_ok=True)
utts = read_manifest(args.manifest)
out = []
for u in utts:
    path = audio_dir / f"{u.id}.flac"
    if not path.is_file():
        wav = resample(load_audio(u.audio), SAMPLE_RATE, NARROW_RATE)
        tmp = path.with_suffix(".tmp.flac")
        sf.write(tmp, wav.clip(-1, 1), NARROW_RATE, subtype="PCM_16")
        os.replace(tmp, path)
    out.append(dataclasses.replace(u, audio=str(path.resolve()), sample_rate=NARROW_RATE))
write_manifest(out, args.out)
print(f"{args.out}: {len(out)} utterances at {NARROW_RATE} Hz ({sum(u.duration for u in out) / 3600:.2f} h), "
      f"audio in {audio_dir}")

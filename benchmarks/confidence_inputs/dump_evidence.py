import dataclasses, json, sys, torch
torch.set_num_threads(1)
from asr.data import read_manifest, load_features
from asr.decode import shipped_decoding, make_beam_decoder
from asr.text import load_lexicon
from asr.model import load_model
from asr.evaluate import _beam_words
from asr.metrics import words_right
head, dec = shipped_decoding()
dec = dataclasses.replace(dec, decoder="beam", calibration=None)
utts = read_manifest("data/librispeech/dev.jsonl")
model = load_model(sys.argv[1] or None)
lex = load_lexicon(None)
beam = make_beam_decoder(head, lex, dec)
feats = load_features(utts, model.config.features, workers=1, progress=False)
words = _beam_words(model, feats, lex, head, beam, dec.precision)
out = open(sys.argv[2] if len(sys.argv) > 2 else "/tmp/conf/ev.jsonl", "w")
for u, ws in zip(utts, words):
    r = words_right(u.text, [w.word for w in ws])
    for i, (w, ok) in enumerate(zip(ws, r)):
        out.write(json.dumps({"utt": u.id, "spk": u.speaker, "i": i, "n": len(ws), "word": w.word, "start": w.start,
                              "end": w.end, "ev": w.evidence, "right": ok, "ref": u.text if i == 0 else None}) + "\n")

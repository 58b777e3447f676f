"""A learning curve's points and what a power law through them predicts:

    python recipes/librispeech/local/curve.py --point 1 GREEDY.json BEAM.json --point 2.5 ... --predict 100

Each ``--point HOURS GREEDY BEAM`` names the hours of training speech, the ``summary.json`` of
``asr evaluate`` with the greedy phone head (its ``per``) and a ``summary.json`` or ``best.json`` of the
beam search (its ``wer``). The fit is a straight line through log(error) against log(hours), least
squares, that is error = a * hours ** -b: the usual shape of a learning curve in its early part (Hestness
et al. 2017). It has no floor, so far beyond the measured hours it predicts too little error: the
prediction is an estimate, printed as one.
"""

import argparse
import json

import numpy as np

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--point", nargs=3, action="append", required=True, metavar=("HOURS", "GREEDY", "BEAM"))
ap.add_argument("--predict", type=float, nargs="+", default=[100.0], metavar="HOURS")
args = ap.parse_args()

hours, per, wer = [], [], []
for h, greedy, beam in args.point:
    hours.append(float(h))
    per.append(json.load(open(greedy))["per"])
    wer.append(json.load(open(beam))["wer"])
print("| training speech | dev PER, greedy | dev WER, beam + 4-gram |\n|---|---|---|")
for h, p, w in sorted(zip(hours, per, wer)):
    print(f"| {h:g} h | {100 * p:.2f} % | {100 * w:.2f} % |")
for name, errors in (("PER", per), ("WER", wer)):
    slope, intercept = np.polyfit(np.log(hours), np.log(errors), 1)
    fitted = np.exp(intercept + slope * np.log(hours))
    worst = max(abs(f - e) for f, e in zip(fitted, errors))
    predictions = ", ".join(f"{h:g} h: {100 * np.exp(intercept + slope * np.log(h)):.1f} %" for h in args.predict)
    print(f"{name} = {np.exp(intercept):.4f} * hours ^ {slope:.4f} (each doubling x {2 ** slope:.3f}; "
          f"largest miss on the points {100 * worst:.2f} points); predicted {predictions}")

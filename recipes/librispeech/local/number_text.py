"""Spoken numbers as LM text: digit strings, years, times, amounts and counts, written out as
LibriSpeech writes them ("nine oh two one", "nineteen sixty one", "half past four").

The Gutenberg books that most of the word LM is estimated on spell out few numbers, and never a
string of digits: "nine oh two one oh" was as unlikely to the LM as any five random words, and
read-out phone and card numbers came out as other words. Mixed into stage 4's text, these
sentences make such strings as easy to say as book words.

    python3 recipes/librispeech/local/number_text.py --sentences 200000 --out numbers.txt.gz

The sentences are drawn with a fixed seed; the output is deterministic. Needs num2words
(`pip install -e '.[recipe]'`).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random

from num2words import num2words

from asr.text import normalize

DIGITS = "zero one two three four five six seven eight nine".split()
CARRIERS = ["", "", "", "the number is", "my number is", "call", "it is", "that is", "dial", "extension",
            "the code is", "account number", "room", "flight", "page", "chapter", "in", "at", "about", "on"]


def digit_string(rng: random.Random) -> str:
    """3-12 digits read one by one, zero as "zero" or "oh", sometimes in groups like a phone number."""
    oh = rng.random() < 0.5
    digits = [rng.randrange(10) for _ in range(rng.randint(3, 12))]
    return " ".join("oh" if d == 0 and oh else DIGITS[d] for d in digits)


def year(rng: random.Random) -> str:
    return num2words(rng.randint(1000, 2099), to="year")


def clock(rng: random.Random) -> str:
    hour, minute = rng.randint(1, 12), rng.choice([0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, rng.randrange(60)])
    words = num2words(hour)
    forms = [f"{words} o'clock" if minute == 0 else f"{words} {'oh ' + num2words(minute) if minute < 10 else num2words(minute)}",
             f"half past {words}", f"quarter past {words}", f"quarter to {words}", f"{num2words(minute)} past {words}"]
    return rng.choice(forms) + rng.choice(["", "", " in the morning", " in the evening", " a m", " p m"])


def amount(rng: random.Random) -> str:
    n = int(10 ** rng.uniform(0, 6))
    return num2words(n) + rng.choice(["", "", " dollars", " pounds", " years", " miles", " people", " times", " percent"])


def sentence(rng: random.Random) -> str:
    kind = rng.choices([digit_string, year, clock, amount], weights=[4, 2, 1, 2])[0]
    carrier = rng.choice(CARRIERS) if kind is digit_string else rng.choice(["", "", "in" if kind is year else "at"])
    return normalize(f"{carrier} {kind(rng)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=200000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="text file, one sentence a line (.gz: gzipped)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = f"{args.out}.tmp"
    text = "".join(sentence(rng) + "\n" for _ in range(args.sentences)).encode("utf-8")
    with open(tmp, "wb") as f:
        if args.out.endswith(".gz"):
            with gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as z:  # no name or time: the same bytes every run
                z.write(text)
        else:
            f.write(text)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()

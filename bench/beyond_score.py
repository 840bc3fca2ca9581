#!/usr/bin/env python3
"""Scores aiocr's math reading and constrained answers on labelled sets (standard library only).

usage: beyond_score.py math SET_DIR          SET_DIR/math/manifest.tsv (file, text, value,
                                             baseline_ok): the shared math fixtures' format
       beyond_score.py constrained SET_DIR   SET_DIR/manifest.tsv (file, label): the shared
                                             captcha fixtures' format

`constrained` asks for what a site's captcha is known to be: the label's length (min = max),
digits only / letters only / digits or letters, case-insensitive (2captcha's default). It
reports, among the images whose unconstrained answer (ddddocr's) breaks those constraints,
how many the constrained search answers right; the right answers over all images before
and after; and, asked for 1 or 2 characters more than each label has, how many are refused
(unsolvable: the image does not hold that many) rather than answered with made-up characters. The binary is $AIOCR_BIN (default target/release/aiocr); the models are found as
`aiocr ocr` finds them (AIOCR_MODEL_DIR).
"""
import collections
import csv
import os
import subprocess
import sys

AIOCR = os.environ.get("AIOCR_BIN", "target/release/aiocr")


def manifest(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def ocr(files, *options):
    """aiocr ocr's answer per file ('' for an error line)."""
    out = subprocess.run([AIOCR, "ocr", *options, *files], capture_output=True, text=True)
    if out.returncode not in (0, 1):
        sys.exit(f"aiocr ocr failed: {out.stderr.strip()}")
    answers = {}
    for line in out.stdout.splitlines():
        file, answer = line.split("\t")[:2]
        answers[file] = "" if answer.startswith("error: ") else answer
    return answers


def score_math(set_dir):
    rows = manifest(os.path.join(set_dir, "math", "manifest.tsv"))
    files = [os.path.join(set_dir, "math", r["file"]) for r in rows]
    answers = ocr(files, "--math")
    right = sum(answers.get(f) == r["value"] for f, r in zip(files, rows))
    naive = sum(r.get("baseline_ok") == "1" for r in rows)
    print(f"math: {set_dir}: {right}/{len(rows)} right "
          f"(ddddocr's recipe, read then eval: {naive}/{len(rows)})")


def rules_of(label):
    """What a site with this captcha would ask for: 2captcha's numeric code and the length."""
    numeric = 1 if label.isdigit() else 2 if label.isalpha() else 3
    return numeric, len(label)


def breaks(answer, numeric, length):
    allowed = {1: str.isdigit, 2: str.isalpha, 3: str.isalnum}[numeric]
    return len(answer) != length or not all(allowed(c) and c.isascii() for c in answer)


def score_constrained(set_dir):
    rows = manifest(os.path.join(set_dir, "manifest.tsv"))
    files = [os.path.join(set_dir, r["file"]) for r in rows]
    plain = ocr(files)
    groups = collections.defaultdict(list)
    for f, r in zip(files, rows):
        groups[rules_of(r["label"])].append(f)
    searched = {}
    for (numeric, length), group in sorted(groups.items()):
        searched.update(ocr(group, "--numeric", str(numeric), "--min-len", str(length),
                            "--max-len", str(length), "--case-insensitive"))
    broke = fixed = right_before = right_after = 0
    for f, r in zip(files, rows):
        label = r["label"].lower()
        numeric, length = rules_of(r["label"])
        right_before += plain[f].lower() == label
        right_after += searched[f].lower() == label
        if breaks(plain[f], numeric, length):
            broke += 1
            fixed += searched[f].lower() == label
    share = 100.0 * fixed / max(broke, 1)
    print(f"constrained: {set_dir}: {len(rows)} images, {broke} unconstrained answers break the "
          f"constraints; the search answers {fixed} of them right ({share:.0f} %); right over "
          f"all images (case-insensitive): {right_before} -> {right_after}")
    # Lengths the images do not hold: every answer would be made up, a refusal is right.
    for extra in (1, 2):
        longer = {}
        for (numeric, length), group in sorted(groups.items()):
            longer.update(ocr(group, "--numeric", str(numeric), "--min-len",
                              str(length + extra), "--max-len", str(length + extra),
                              "--case-insensitive"))
        answered = sum(longer[f] != "" for f in files)
        print(f"constrained: {set_dir}: {extra} more character(s) than each label asked for: "
              f"{len(rows) - answered} of {len(rows)} refused, {answered} answered (made up)")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("math", "constrained"):
        sys.exit(__doc__)
    {"math": score_math, "constrained": score_constrained}[sys.argv[1]](sys.argv[2])

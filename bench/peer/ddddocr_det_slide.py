"""ddddocr 1.6.1 in Python, with its defaults, on the detection and slide fixtures: how many
images (pairs) per second it answers in one process, the figures bench/det_slide_vs_ddddocr.sh
compares aiocr with. Also checks that its answers are the manifests' (the same library).

usage: ddddocr_det_slide.py FIXTURES_DIR SECONDS [--no-check]
prints: det_images_per_s N, det_ms_per_image N, slide_pairs_per_s N, slide_ms_per_pair N
(--no-check skips comparing the answers with the manifests, for repeated rounds)
"""
import csv
import json
import sys
import time

import ddddocr

fixtures, seconds = sys.argv[1], float(sys.argv[2])
check = "--no-check" not in sys.argv[3:]


def rows(kind):
    with open(f"{fixtures}/{kind}/manifest.tsv") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def run_for(seconds, items, call):
    """Calls `call` on the items round-robin for `seconds`; returns calls per second."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        call(items[done % len(items)])
        done += 1
    return done / (time.perf_counter() - started)


detector = ddddocr.DdddOcr(det=True, ocr=False, show_ad=False)
images = [(open(f"{fixtures}/det/{r['file']}", "rb").read(), json.loads(r["ddddocr"])) for r in rows("det")]
if check:
    assert all(detector.detection(image) == expected for image, expected in images), "detection answers"
det_rate = run_for(seconds, images, lambda item: detector.detection(item[0]))

slider = ddddocr.DdddOcr(det=False, ocr=False, show_ad=False)
pairs = []
for r in rows("slide"):
    target = open(f"{fixtures}/slide/{r['target']}", "rb").read()
    background = open(f"{fixtures}/slide/{r['background']}", "rb").read()
    pairs.append((r["kind"], target, background))


def slide(pair):
    kind, target, background = pair
    if kind == "comparison":
        return slider.slide_comparison(target, background)
    return slider.slide_match(target, background, simple_target=kind == "match_simple")


for pair in pairs:
    slide(pair)  # warm-up
slide_rate = run_for(seconds, pairs, slide)

print(f"det_images_per_s {det_rate:.2f}")
print(f"det_ms_per_image {1000 / det_rate:.3f}")
print(f"slide_pairs_per_s {slide_rate:.2f}")
print(f"slide_ms_per_pair {1000 / slide_rate:.3f}")

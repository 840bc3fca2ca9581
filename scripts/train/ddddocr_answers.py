#!/usr/bin/env python3
"""Record what ddddocr 1.6.1 answers on a held-out set: its stock models and a trained model
through its import path (the oracle aiocr's answers are compared with).

usage: ddddocr_answers.py HELD_OUT_DIR MODEL_DIR

Reads HELD_OUT_DIR/manifest.tsv (file, label, format) and rewrites it with three more columns:
ddddocr_old (DdddOcr()), ddddocr_beta (DdddOcr(beta=True)) and ddddocr_import
(DdddOcr(ocr=False, det=False, import_onnx_path=MODEL_DIR/lib.onnx,
charsets_path=MODEL_DIR/charsets.json)); `!error <kind>` where ddddocr raises. Prints each
column's count of answers equal to the label (case-insensitive, as the
fixtures' generator counts). Needs ddddocr (pip), not torch.
"""
import csv
import os
import sys

import ddddocr


def main():
    held_out, model_dir = sys.argv[1], sys.argv[2]
    manifest = os.path.join(held_out, "manifest.tsv")
    with open(manifest, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    readers = {
        "ddddocr_old": ddddocr.DdddOcr(show_ad=False),
        "ddddocr_beta": ddddocr.DdddOcr(show_ad=False, beta=True),
        "ddddocr_import": ddddocr.DdddOcr(
            ocr=False, det=False, show_ad=False,
            import_onnx_path=os.path.join(model_dir, "lib.onnx"),
            charsets_path=os.path.join(model_dir, "charsets.json"),
        ),
    }
    for row in rows:
        with open(os.path.join(held_out, row["file"]), "rb") as f:
            data = f.read()
        for column, reader in readers.items():
            try:
                row[column] = reader.classification(data)
            except Exception as error:  # recorded as the oracle's refusal, as the fixtures do
                row[column] = f"!error {type(error).__name__}"
    columns = ["file", "label", "format", *readers]
    with open(manifest, "w", encoding="utf-8") as f:
        f.write("\t".join(columns) + "\n")
        f.writelines("\t".join(row[c] for c in columns) + "\n" for row in rows)
    for column in readers:
        right = sum(row[column].lower() == row["label"] for row in rows)
        print(f"{column}: {right}/{len(rows)} equal to the label")


if __name__ == "__main__":
    sys.exit(main())

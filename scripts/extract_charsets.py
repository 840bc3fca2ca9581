#!/usr/bin/env python3
"""Write ddddocr's built-in charsets as model description files.

usage: extract_charsets.py CHARSET_MANAGER_PY OUT_DIR

Reads the literal lists returned by CharsetManager._get_old_charset / _get_beta_charset in
ddddocr 1.6.1 (without importing ddddocr, which needs numpy, Pillow and onnxruntime) and writes
OUT_DIR/charset_old.json and OUT_DIR/charset_beta.json in ddddocr's own custom-model format
(`charset`, `word`, `image`, `channel`): the built-in models are then described exactly like a
custom model whose images are resized to height 64 and converted to one gray channel.
"""
import ast
import json
import os
import sys

source_path, out_dir = sys.argv[1], sys.argv[2]
with open(source_path, encoding="utf-8") as f:
    tree = ast.parse(f.read())

wanted = {"_get_old_charset": "charset_old.json", "_get_beta_charset": "charset_beta.json"}
found = {}
for node in ast.walk(tree):
    if isinstance(node, ast.FunctionDef) and node.name in wanted:
        for stmt in node.body:
            if isinstance(stmt, ast.Return):
                found[node.name] = ast.literal_eval(stmt.value)
missing = set(wanted) - set(found)
if missing:
    sys.exit(f"extract_charsets: {sorted(missing)} not found in {source_path}")

for name, file_name in wanted.items():
    charset = found[name]
    assert charset[0] == "", "index 0 must be the CTC blank"
    description = {"charset": charset, "word": False, "image": [-1, 64], "channel": 1}
    with open(os.path.join(out_dir, file_name), "w", encoding="utf-8") as f:
        json.dump(description, f, ensure_ascii=False)
    print(f"extract_charsets: {file_name}: {len(charset)} entries")

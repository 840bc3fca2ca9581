#!/usr/bin/env python3
"""The import graph of one module folder as Graphviz DOT, the modules of import circles in red.

Usage: python3 bench/module_graph.py FOLDER [TITLE] | dot -Tpng -o graph.png
A child module A imports B when a file of A names B through `super::B`, `self::B`, `crate::...::B`
(or inside a `use` group), as tests/import_cycles.rs counts them (this is its quick picture)."""
import os
import re
import sys

folder = sys.argv[1].rstrip('/')
title = sys.argv[2] if len(sys.argv) > 2 else folder
inside = folder.split('src', 1)[1].lstrip('/') if 'src' in folder else ''
crate_path = inside.replace('/', '::')
files = {}
for root, _, names in os.walk(folder):
    for name in names:
        if name.endswith('.rs'):
            path = os.path.join(root, name)
            top = os.path.relpath(path, folder).split(os.sep)[0].removesuffix('.rs')
            if top not in ('mod', 'lib', 'main'):
                files.setdefault(top, []).append(path)
mods = set(files)
edges = {m: set() for m in mods}
prefix = r'crate::' if not crate_path else rf'(?:super::|crate::{re.escape(crate_path)}::)'
for m, paths in files.items():
    for path in paths:
        text = re.sub(r'//[^\n]*', '', open(path, encoding='utf-8').read())
        text = re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*', '', text, flags=re.S)
        for other in mods - {m}:
            if re.search(rf'{prefix}(?:\{{[^}}]*\b{other}\b|{other}\b)', text):
                edges[m].add(other)
# Modules on a circle: those that reach themselves.
def reach(start):
    seen, todo = set(), [start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
circle = {m for m in mods if m in reach(m)}
print('digraph imports {')
print(f'  label="{title}: {len(mods)} modules, {sum(map(len, edges.values()))} imports, '
      f'{len(circle)} on a circle"; labelloc=t; rankdir=BT; node [shape=box, fontsize=10];')
for m in sorted(mods):
    color = ', color=red, fontcolor=red' if m in circle else ''
    print(f'  "{m}" [label="{m}"{color}];')
for m in sorted(mods):
    for other in sorted(edges[m]):
        red = ' [color=red]' if m in circle and other in circle and m in reach(other) else ''
        print(f'  "{m}" -> "{other}"{red};')
print('}')

#!/usr/bin/env python3
"""Fails when modules import each other in a circle.

Reads each crate's sources (`src`, `sim/src` by default), takes every `crate::a::b` and
`super::x` path outside comments and unit tests, maps it to its module at depth two
(`connectors::http`, `api::admin`), and looks for strongly connected groups. With
`--graph` it prints each module's imports as well. Exit 1 when a circle exists.
"""
import os
import re
import sys
from collections import defaultdict


def module_of(root, path):
    parts = path[len(root) + 1:-3].split("/")
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def exists(root, parts):
    base = os.path.join(root, *parts)
    return os.path.exists(base + ".rs") or os.path.isdir(base)


def imports(root):
    edges = defaultdict(set)
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(folder, name)
            here = module_of(root, path)
            key = "::".join(here[:2])
            text = open(path, encoding="utf-8").read()
            cut = text.find("#[cfg(test)]\nmod tests")
            if cut >= 0:
                text = text[:cut]
            for line in text.splitlines():
                line = line.strip()
                if line.startswith("//"):
                    continue
                targets = []
                for first, second in re.findall(r"crate::([a-z_]+)(?:::([a-z_]+))?", line):
                    parts = [first] + ([second] if second and exists(root, [first, second]) else [])
                    targets.append("::".join(parts))
                parent = here[:-1] if name != "mod.rs" else here[:-1]
                for step in re.findall(r"\bsuper::([a-z_]+)", line):
                    parts = parent + [step]
                    if exists(root, parts):
                        targets.append("::".join(parts[:2]))
                for target in targets:
                    if not (target.startswith(key) or key.startswith(target)):
                        edges[key].add(target)
    return edges


def circles(edges):
    index, low, stack, on, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    roots = args or ["src", "sim/src"]
    failed = False
    for root in roots:
        edges = imports(root)
        if "--graph" in sys.argv:
            for module in sorted(edges):
                print(f"{root}: {module} -> {', '.join(sorted(edges[module]))}")
        for group in circles(edges):
            failed = True
            print(f"{root}: import circle among {', '.join(group)}")
    if failed:
        sys.exit(1)
    print(f"no import circle in {', '.join(roots)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""check-layers.py — the include direction of src/ (docs/architecture.md).

Every folder of src/ is a layer with a rank. A file may include headers of
its own folder and of folders of a lower rank, never of a higher or equal
rank in another folder; and no two modules (a .c with its .h) may include
each other. Run from anywhere: scripts/check-layers.py [SRCDIR]. Exit 0
when the tree keeps the rules, 1 with one line per violation.
It first checks itself on a made-up tree with one violation of each kind
(make check runs it: scripts/check-layers.py in TESTS).
"""
import os
import re
import sys
import tempfile

# folder -> rank (lowest first). Same rank, different folders: independent.
LAYERS = {
    "util": 0,
    "ingest": 1, "store": 1, "detect": 1,
    "alert": 2,
    "service": 3,
    "engine": 4,
    "http": 5, "cli": 5,
    "daemon": 6,
}
# generated code (protobuf-c), at the rank of the layer that uses it
EXTRA = {"proto": 0}

INC = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def check(src):
    errors = []
    ranks = dict(LAYERS, **EXTRA)
    deps = {}  # module "folder/name" -> set of modules it includes
    for folder in sorted(os.listdir(src)):
        path = os.path.join(src, folder)
        if not os.path.isdir(path) or folder == "proto":
            continue
        if folder not in LAYERS:
            errors.append(f"src/{folder}/: folder missing from the layer table of {sys.argv[0]}")
            continue
        for name in sorted(os.listdir(path)):
            if not name.endswith((".c", ".h")):
                continue
            rel = f"{folder}/{name}"
            mod = rel.rsplit(".", 1)[0]
            with open(os.path.join(path, name), encoding="utf-8") as f:
                text = f.read()
            for m in INC.finditer(text):
                inc = m.group(1)
                if inc == "config.h":
                    continue
                if "/" not in inc:
                    errors.append(f"src/{rel}: includes \"{inc}\": name its folder (\"layer/{inc}\")")
                    continue
                ifolder = inc.split("/", 1)[0]
                if ifolder not in ranks:
                    errors.append(f"src/{rel}: includes \"{inc}\": unknown folder '{ifolder}'")
                    continue
                imod = inc.rsplit(".", 1)[0]
                if imod != mod:
                    deps.setdefault(mod, set()).add(imod)
                if ifolder == folder:
                    continue
                if ranks[ifolder] >= LAYERS[folder]:
                    errors.append(f"src/{rel}: includes \"{inc}\": layer '{ifolder}' "
                                  f"(rank {ranks[ifolder]}) is not below '{folder}' "
                                  f"(rank {LAYERS[folder]})")
    for a in sorted(deps):
        for b in sorted(deps[a]):
            if a < b and a in deps.get(b, ()):
                errors.append(f"src/{a} and src/{b} include each other")
    return errors


def self_test():
    with tempfile.TemporaryDirectory() as d:
        for folder, files in {
            "util": {"log.h": '#include "engine/engine.h"\n'},        # upward
            "engine": {"engine.h": "", "core.c": '#include "engine/engine.h"\n',
                       "a.c": '#include "engine/b.h"\n', "a.h": "",
                       "b.c": '#include "engine/a.h"\n', "b.h": "",   # cycle a <-> b
                       "c.c": '#include "series.h"\n'},              # no folder
            "ingest": {"line.c": '#include "store/store.h"\n'},      # same rank
            "store": {"store.h": ""},
        }.items():
            os.mkdir(os.path.join(d, folder))
            for name, text in files.items():
                with open(os.path.join(d, folder, name), "w") as f:
                    f.write(text)
        errs = check(d)
    want = ["util/log.h", "include each other", "name its folder", "ingest/line.c"]
    missing = [w for w in want if not any(w in e for e in errs)]
    if missing or len(errs) != len(want):
        print("self-test failed: expected violations", want, "got", errs)
        return 1
    return 0


def main():
    args = sys.argv[1:]
    if self_test():
        return 1
    src = args[0] if args else os.path.join(
        os.environ.get("FORESHOCK_SRCDIR", os.path.join(os.path.dirname(__file__), "..")), "src")
    errs = check(src)
    for e in errs:
        print(e)
    if errs:
        print(f"{len(errs)} layering violation(s); see docs/architecture.md")
        return 1
    print("layers ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Print the mutation score per module from mutmut's results in mutants/ (`make mutation`).

One line per module: killed, survived, other (not checked, no tests, timeout, suspicious)
and total, then every survivor's name for `mutmut show NAME`. A survivor is either a
missing test or an equivalent mutant listed (with why) in tests/unit/test_rules_*.py.
Exit status 1 when a module has a mutant not killed, so `make mutation` says so.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3}  # mutmut: a test failed, or pytest hit an internal error
SURVIVED = {0}


def main(root: Path = Path("mutants")) -> int:
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print(f"no mutmut results under {root}/: run `make mutation` first", file=sys.stderr)
        return 2
    survivors: list[str] = []
    print(f"{'module':34} {'killed':>7} {'survived':>9} {'other':>6} {'total':>6}")
    incomplete = False
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        counts = Counter("killed" if code in KILLED else "survived" if code in SURVIVED
                         else "other" for code in codes.values())
        module = str(meta.relative_to(root)).removesuffix(".py.meta")
        print(f"{module:34} {counts['killed']:7} {counts['survived']:9} {counts['other']:6} "
              f"{len(codes):6}")
        survivors += sorted(name for name, code in codes.items() if code in SURVIVED)
        incomplete |= counts["killed"] != len(codes)
    for name in survivors:
        print(f"survived: {name}")
    return 1 if incomplete else 0


if __name__ == "__main__":
    sys.exit(main())

"""Print the mutation score per module from mutmut's results in mutants/ (`make mutation`).

One line per module: killed, survived, other (no tests, timeout, suspicious), the
mutants generated but not run (outside the patterns `make mutation` runs) and total, then
every survivor's name for `mutmut show NAME`. A survivor is either a missing test or an
equivalent mutant listed (with why) in tests/unit/test_rules_*.py.
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
    print(f"{'module':34} {'killed':>7} {'survived':>9} {'other':>6} {'not run':>8} {'total':>6}")
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        counts = Counter("killed" if code in KILLED else "survived" if code in SURVIVED
                         else "not run" if code is None else "other" for code in codes.values())
        module = str(meta.relative_to(root)).removesuffix(".py.meta")
        print(f"{module:34} {counts['killed']:7} {counts['survived']:9} {counts['other']:6} "
              f"{counts['not run']:8} {len(codes):6}")
        survivors += sorted(name for name, code in codes.items() if code in SURVIVED)
    for name in survivors:
        print(f"survived: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

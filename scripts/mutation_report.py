"""Per-module mutation score from `mutmut results --all true` (run after `mutmut run`).

killed = killed or timed out (a mutant that hangs the tests is caught); every other status
(survived, no tests, suspicious, not checked) counts against the module. Writes a Markdown table
to stdout and the survivors, by module, to `mutants/survivors.txt`.
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

# the modules issue 11 asks about, by dotted prefix
GROUPS = {"ssl_train/methods/": "ssl_train.methods.", "augpipe/functional/": "augpipe.functional.",
          "augpipe/sampling/": "augpipe.sampling.", "loaders/backends/order.py": "loaders.backends.order.",
          "_augpipe_shared/timing.py": "_augpipe_shared.timing.", "ssl_train/evaluate.py": "ssl_train.evaluate."}
LINE = re.compile(r"^\s+(\S+): (.+)$")


def main() -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    counts: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[str]] = defaultdict(list)
    for line in out.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        name, status = match.groups()
        group = next((g for g, prefix in GROUPS.items() if name.startswith(prefix)), None)
        if group is None:
            continue
        counts[group][status] += 1
        if status not in ("killed", "timeout"):
            survivors[group].append(f"{name}: {status}")
    print("| module | killed / total | score | not killed (by status) |")
    print("|---|---|---|---|")
    for group in GROUPS:
        c = counts.get(group, Counter())
        total = sum(c.values())
        killed = c["killed"] + c["timeout"]
        rest = ", ".join(f"{n} {s}" for s, n in sorted(c.items()) if s not in ("killed", "timeout")) or "-"
        score = f"{100 * killed / total:.0f}%" if total else "n/a"
        print(f"| `{group}` | {killed} / {total} | {score} | {rest} |")
    lines = [f"## {g}\n" + "\n".join(survivors[g]) for g in GROUPS if survivors.get(g)]
    Path("mutants").mkdir(exist_ok=True)
    Path("mutants/survivors.txt").write_text("\n\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

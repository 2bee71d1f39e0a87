"""Sum up unittest logs, one per backend, into one line: ``N passed, F failed, S skipped``.

``scripts/test`` runs the suite once per backend; CI reads this line. The
exit status is non-zero when any run failed, errored or did not finish, or
its output shows a leak (a ResourceWarning, an unawaited coroutine, a closed
or foreign event loop): each such line counts as a failure.
"""

import re
import sys
from pathlib import Path

RAN = re.compile(r"^Ran (\d+) tests? in", re.MULTILINE)
# Signs of leaks that never fail a test by themselves; any of them fails the run.
LEAK_SIGNS = ("ResourceWarning", "was never awaited", "Event loop is closed",
              "attached to a different loop", "Exception ignored in")
OUTCOME = re.compile(r"^(OK|FAILED)(?: \((.*)\))?$", re.MULTILINE)


def summarize(log: str) -> dict[str, int] | None:
    """Return counts from one unittest log, or None if the run never finished."""
    ran, outcome = RAN.findall(log), OUTCOME.findall(log)
    if not ran or not outcome:
        return None
    details = dict(item.split("=") for item in outcome[-1][1].split(", ") if "=" in item)
    counts = {key: int(details.get(key, 0)) for key in
              ("failures", "errors", "skipped", "expected failures", "unexpected successes")}
    failed = counts["failures"] + counts["errors"] + counts["unexpected successes"]
    skipped = counts["skipped"] + counts["expected failures"]
    return {"passed": int(ran[-1]) - failed - skipped, "failed": failed, "skipped": skipped}


def main(paths: list[str]) -> int:
    total = {"passed": 0, "failed": 0, "skipped": 0}
    unfinished = []
    for path in paths:
        log = Path(path).read_text(errors="replace")
        counts = summarize(log)
        if counts is None:
            unfinished.append(Path(path).stem)
            continue
        leaks = [line for line in log.splitlines() if any(sign in line for sign in LEAK_SIGNS)]
        for line in leaks:
            print(f"{Path(path).stem}: leak: {line.strip()}")
        counts["failed"] += len(leaks)
        print(f"{Path(path).stem}: {counts['passed']} passed, {counts['failed']} failed, "
              f"{counts['skipped']} skipped")
        total = {key: total[key] + counts[key] for key in total}
    if unfinished:
        print(f"did not finish: {', '.join(unfinished)}")
    print(f"{total['passed']} passed, {total['failed'] + len(unfinished)} failed, "
          f"{total['skipped']} skipped")
    return 1 if total["failed"] or unfinished else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

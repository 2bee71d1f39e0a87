"""Command line: pick rows, run them, print the table, write the JSON.

Exit status is 0 only when every selected row (and memory probe) measured;
a failed row shows its error in the table instead of aborting the run, so
one broken scenario never hides the numbers of the others.
"""
import argparse
import os
import re
import sys
import time

from . import report
from .bench import Benchmark, Options
from .harness import Interrupted, Progress
from .scenarios import SCENARIOS

QUICK = Options(sizes=(10, 30), repeats=1, memory_tests=0, warmup=False, parallel_tests=200)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Per-test cost of test_framework against floors, a naive "
                    "approach and Django, on PostgreSQL and SQLite; cold and warm "
                    "start-up; nose2 serial against -N 2; a 3-model-set pytest suite "
                    "against its create_all fixtures.")
    parser.add_argument("--quick", action="store_true",
                        help="tiny suites, one repeat, no Django or memory rows: "
                             "proves the benchmark works, measures nothing")
    parser.add_argument("--repeats", type=int, help="repeats per row (default 5)")
    parser.add_argument("--only", metavar="PATTERN",
                        help="regular expression matched against row keys and titles")
    parser.add_argument("--json", default="benchmark-results.json", metavar="PATH",
                        help="where to write the results (default: %(default)s)")
    parser.add_argument("--sizes", type=int, nargs=2, metavar=("SMALL", "LARGE"),
                        help="suite sizes the slope is taken between (default 100 1100)")
    parser.add_argument("--memory-tests", type=int, metavar="N",
                        help="tests in the memory probe run, 0 to skip (default 10000)")
    parser.add_argument("--pg", default="postgres@127.0.0.1:5432", metavar="USER@HOST:PORT",
                        help="PostgreSQL server for the database rows, trust auth "
                             "(default: %(default)s)")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    return parser.parse_args(argv)


def options_from(args):
    base = QUICK if args.quick else Options()
    opts = Options(**vars(base))
    if args.repeats is not None:
        opts.repeats = max(1, args.repeats)
    if args.sizes:
        opts.sizes = tuple(args.sizes)
    if args.memory_tests is not None:
        opts.memory_tests = args.memory_tests
    if opts.sizes[1] <= opts.sizes[0] or opts.sizes[0] < 1:
        sys.exit("--sizes: LARGE must be greater than SMALL, both positive")
    match = re.fullmatch(r"([^@]+)@([^:]+):(\d+)", args.pg)
    if not match:
        sys.exit(f"--pg {args.pg!r}: expected USER@HOST:PORT")
    opts.pg_user, opts.pg_host, opts.pg_port = match[1], match[2], int(match[3])
    return opts


def select(args):
    rows = [s for s in SCENARIOS if s.in_quick or not args.quick]
    if args.only:
        pattern = re.compile(args.only, re.IGNORECASE)
        rows = [s for s in rows if pattern.search(s.key) or pattern.search(s.title)]
    return rows


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    selected = select(args)
    if args.list or not selected:
        for s in SCENARIOS:
            print(f"{s.key:<30} {s.title}")
        return 0 if selected else 2
    opts = options_from(args)
    progress = Progress()
    started, load_at_start = time.time(), os.getloadavg()
    try:
        rows, memory = Benchmark(selected, opts, progress).run()
    except (Interrupted, KeyboardInterrupt):
        progress("interrupted; databases cleaned up, no results written")
        return 130
    doc = report.build(rows, memory, opts, {
        "quick": args.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                                      time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        # the machine may be shared: say how busy it was
        "loadavg": {"start": load_at_start, "end": os.getloadavg()}})
    report.write_json(doc, args.json)
    print(report.table(doc))
    progress(f"results written to {args.json}")
    return 1 if doc["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

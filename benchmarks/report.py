"""The results as a plain-text table (stdout) and as JSON (a file).

Both are built from one dict (``build``) so the table and the file can never
disagree.  Times are per test in milliseconds; ``x ref`` divides a row's
median by the median of the reference row ("ours, rollback, PostgreSQL"),
so numbers from different machines compare through the ratio.  ``fixed``
is the per-run overhead left after the slope (throwaway database, schema,
first connection); ``conn/1k tests`` is the slope of client-side connection
counts (see ``child.ConnectionCounter``) scaled to 1,000 tests.  ``calls``
and ``stmts`` are per test too, from two untimed counting runs (Python
calls, and statements the database was sent: see ``child_counters``); they
barely depend on load, so they compare rows measured on a busy machine.
A row with a ``baseline`` (the classes-of-10 rows) also shows its median
over the baseline row's, in a note under it.

The start-up, parallel and model-set groups are whole runs, not slopes, so
they get their own small tables and JSON lists (``startup``, ``parallel``,
``model_sets``): medians, extremes and the ratio of the medians (cold/warm,
serial/parallel, ours/theirs; ``model_sets`` lays out its own table).
"""
import json
import platform
import sys
import textwrap

from . import model_sets
from .harness import median_ratio, summarise
from .parallel import WORKERS
from .scenarios import REFERENCE_KEY, SMALL_CLASSES, TESTS_PER_CLASS

MB = 1024 * 1024
PER_CLASS_TARGET = 1.2   # classes of 10 may cost at most this much per test over classes of 100
COUNTS_FOOTNOTE = (
    "calls, stmts: per test, slope of two untimed counting runs. calls = Python function "
    "calls and coroutine resumptions (sys.setprofile on every thread), stmts = statements "
    "the database was sent: SQLite's trace callback (every statement SQLite ran, BEGIN, "
    "SAVEPOINT and raw-cursor ones included), asyncpg's socket writes (one per request and "
    "round trip); '-' where not counted (psycopg: Django on PostgreSQL).")
PACKAGES = ("sqlalchemy", "asyncpg", "aiosqlite", "django", "psycopg", "pytest", "nose2")


def package_versions():
    """Installed versions of what the rows exercise (None when absent)."""
    from importlib import metadata

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build(rows, memory, options, meta):
    """The JSON-ready result document."""
    out_rows = [_row_dict(row) for row in rows if row.scenario.group == "per-test"]
    startup = [_startup_dict(row) for row in rows if row.scenario.group == "startup"]
    parallel = [_parallel_dict(row, options) for row in rows if row.scenario.group == "parallel"]
    model_set_rows = [dict(_common(row), **model_sets.summary(row)) for row in rows
                      if row.scenario.group == model_sets.GROUP]
    ref = next((r for r in out_rows if r["key"] == REFERENCE_KEY and r["status"] == "ok"), None)
    for r in out_rows:
        r["ratio_to_reference"] = _ratio(r, ref)
        base = next((b for b in out_rows if b["key"] == r["baseline"]), None)
        r["ratio_to_baseline"] = _ratio(r, base) if r["baseline"] else None
        r["calls_ratio_to_baseline"] = (
            r["calls_per_test"] / base["calls_per_test"]
            if base and r["calls_per_test"] and base["calls_per_test"] else None)
    return {
        "meta": dict(meta, python=sys.version.split()[0], platform=platform.platform(),
                     sizes=list(options.sizes), repeats=options.repeats,
                     tests_per_class=TESTS_PER_CLASS, reference=REFERENCE_KEY,
                     packages=package_versions(),
                     small_classes=SMALL_CLASSES, per_class_target=PER_CLASS_TARGET,
                     counts_method=COUNTS_FOOTNOTE,
                     parallel_tests=options.parallel_tests,
                     method="per-test cost = (t_large - t_small) / (n_large - n_small), "
                            "time measured inside each child around the test run",
                     startup_method="one-test suite timed inside the child around the test "
                                    "run (provisioning included); cold = no schema template, "
                                    "warm = the template the cold run built",
                     parallel_method="whole nose2 run timed by the parent, process start to "
                                     f"exit, serially and with -N {WORKERS}",
                     model_sets_method="whole `python -m pytest -q` run of a 6-test, 3-model-set "
                                       "suite timed by the parent, process start to exit: ours "
                                       "cold (no template) and warm, theirs (create_all/drop_all "
                                       "fixtures, no framework plugin) once per repeat"),
        "rows": out_rows,
        "startup": startup,
        "parallel": parallel,
        "model_sets": model_set_rows,
        "memory": [_memory_dict(m) for m in memory],
        "failed": any(r["status"] != "ok" for r in out_rows + startup + parallel + model_set_rows)
                  or any(m["status"] != "ok" for m in memory),
    }


def _common(row):
    """Return the fields every group's JSON row starts with; no measurement is a failure."""
    s = row.scenario
    return {"key": s.key, "title": s.title, "runner": s.runner,
            "status": row.status if row.runs or row.status != "ok" else "failed",
            "error": row.error, "warnings": row.warnings}


def _ratio(row, other):
    """Divide two rows' median per-test times (None unless both measured)."""
    if not other or row["status"] != "ok" or other["status"] != "ok":
        return None
    return median_ratio(row["per_test_ms"], other["per_test_ms"])


def _row_dict(row):
    s = row.scenario
    runs = row.runs
    per_test = summarise([1000 * r["per_test_s"] for r in runs])
    return {
        **_common(row),
        "tests_per_class": s.tests_per_class, "baseline": s.baseline or None,
        "calls_per_test": row.counts.get("calls_per_test"),
        "statements_per_test": row.counts.get("statements_per_test"),
        "counts": row.counts or None,
        "per_test_ms": per_test,
        "fixed_ms": summarise([1000 * r["fixed_s"] for r in runs]),
        "connections_per_1000_tests": (summarise([r["connections_per_1000"] for r in runs])
                                       if s.postgres else None),
        "runs": runs,
    }


def _startup_dict(row):
    runs = row.runs
    cold = summarise([1000 * r["cold_s"] for r in runs])
    warm = summarise([1000 * r["warm_s"] for r in runs])
    return {**_common(row), "cold_ms": cold, "warm_ms": warm,
            "cold_over_warm": median_ratio(cold, warm),
            "cold_over_warm_per_repeat": summarise([r["cold_over_warm"] for r in runs]),
            "connections": runs[-1]["connections"] if runs and row.scenario.postgres else None,
            "runs": runs}


def _parallel_dict(row, options):
    runs = row.runs
    serial = summarise([r["serial_s"] for r in runs])
    parallel = summarise([r["parallel_s"] for r in runs])
    return {**_common(row), "n_tests": options.parallel_tests, "workers": WORKERS,
            "serial_s": serial, "parallel_s": parallel,
            "serial_over_parallel": median_ratio(serial, parallel),
            "serial_over_parallel_per_repeat": summarise(
                [r["serial_over_parallel"] for r in runs]),
            "databases": {"serial": sorted({r["databases"][0] for r in runs}),
                          "parallel": sorted({r["databases"][1] for r in runs})},
            "runs": runs}


def _memory_dict(entry):
    out = dict(entry)
    if entry.get("status") == "ok":
        growth = entry["rss_end"] - entry["rss_start"]
        out.update(growth_bytes=growth,
                   growth_per_1000_tests_bytes=1000 * growth / entry["n_tests"])
    return out


def write_json(doc, path):
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")


def _fmt(value, spec):
    """Format ``value``; a missing one is "-", padded to the spec's width."""
    return format("-", spec.split(".")[0].rstrip("df")) if value is None else format(value, spec)


def table(doc):
    """Fixed-width text, one small table per group; failed rows carry their error."""
    sections = [_per_test_lines(doc["rows"]), _startup_lines(doc["startup"]),
                _parallel_lines(doc["parallel"], doc["meta"]),
                model_sets.table_lines(doc["model_sets"]), _memory_lines(doc["memory"]),
                _load_lines(doc["meta"])]
    return "\n\n".join("\n".join(lines) for lines in sections if lines)


def _per_test_lines(rows):
    if not rows:
        return []
    lines = [f"{'scenario':<42} {'runner':<8} {'median':>8} {'min':>8} {'max':>8} "
             f"{'x ref':>6} {'fixed':>8} {'conn/1k':>8} {'calls':>7} {'stmts':>6}",
             f"{'':<42} {'':<8} {'ms/test':>8} {'ms/test':>8} {'ms/test':>8} "
             f"{'':>6} {'ms/run':>8} {'tests':>8} {'/test':>7} {'/test':>6}"]
    lines.append("-" * len(lines[0]))
    titles = {r["key"]: r["title"] for r in rows}
    for r in rows:
        head = _head(r)
        if r["status"] != "ok":
            lines.append(head + "FAILED: " + (r["error"] or "no measurement"))
            continue
        pt, conns = r["per_test_ms"], r["connections_per_1000_tests"]
        lines.append(head + f"{pt['median']:>8.3f} {pt['min']:>8.3f} {pt['max']:>8.3f} "
                     f"{_fmt(r['ratio_to_reference'], '>6.2f')} "
                     f"{r['fixed_ms']['median']:>8.1f} "
                     f"{_fmt(conns and conns['median'], '>8.1f')} "
                     f"{_fmt(r['calls_per_test'], '>7.0f')} "
                     f"{_fmt(r['statements_per_test'], '>6.1f')}")
        if r["baseline"] and r["ratio_to_baseline"] is not None:
            time, calls = (_fmt(r[k], ".2f") for k in ("ratio_to_baseline",
                                                        "calls_ratio_to_baseline"))
            if r["tests_per_class"] != TESTS_PER_CLASS:
                than = (f"the row with classes of {TESTS_PER_CLASS} "
                        f"(target <= {PER_CLASS_TARGET:.1f}x)")
            else:
                than = f"the row '{titles.get(r['baseline'], r['baseline']).strip()}'"
            lines.append(f"{'':<4}note: per test {time}x the time and {calls}x the calls "
                         f"of {than}")
        lines.extend(f"{'':<4}note: {w}" for w in r["warnings"])
    lines.extend(textwrap.wrap(COUNTS_FOOTNOTE, len(lines[0])))
    return lines


def _head(row):
    return f"{row['title'][:42]:<42} {row['runner']:<8} "


def _pair_table(rows, *, title, first, second, ratio, note, spec):
    """Lay out two whole-run measurements side by side (median, min, max each),
    their ratio and a sanity-check column.

    ``first``/``second`` are (JSON key, header); ``ratio`` is (JSON key, two
    header lines); ``note`` is (function of the row, two header lines).
    """
    (key1, head1), (key2, head2) = first, second
    ratio_key, ratio_head = ratio[0], ratio[1:]
    note_of, note_head = note[0], note[1:]
    lines = [f"{title:<42} {'runner':<8} " + " ".join([f"{head1:>8}"] * 3 + [f"{head2:>8}"] * 3)
             + f" {ratio_head[0]:>6} {note_head[0]:>7}",
             f"{'':<42} {'':<8} " + " ".join(f"{h:>8}" for h in ("median", "min", "max") * 2)
             + f" {ratio_head[1]:>6} {note_head[1]:>7}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        if r["status"] != "ok":
            lines.append(_head(r) + "FAILED: " + (r["error"] or "no measurement"))
            continue
        cells = [format(r[key][stat], spec) for key in (key1, key2)
                 for stat in ("median", "min", "max")]
        lines.append(_head(r) + " ".join(cells)
                     + f" {_fmt(r[ratio_key], '>6.2f')} {note_of(r):>7}")
        lines.extend(f"{'':<4}note: {w}" for w in r["warnings"])
    return lines


def _startup_lines(rows):
    if not rows:
        return []
    return _pair_table(rows, title="start-up: run of 1 test, ms", spec=">8.1f",
                       first=("cold_ms", "cold"), second=("warm_ms", "warm"),
                       ratio=("cold_over_warm", "cold/", "warm"),
                       note=(_connections_note, "conn", "c/w"))


def _connections_note(row):
    """Show the server connections of the cold and the warm run ("-" on SQLite)."""
    return "/".join(map(str, row["connections"])) if row["connections"] else "-"


def _parallel_lines(rows, meta):
    if not rows:
        return []
    return _pair_table(rows, title=f"parallel: run of {meta['parallel_tests']} tests, s",
                       spec=">8.2f", first=("serial_s", "serial"),
                       second=("parallel_s", f"-N {WORKERS}"),
                       ratio=("serial_over_parallel", "ser/", "par"),
                       note=(_databases_note, "DBs", "s/p"))


def _databases_note(row):
    """Show databases made serially / in parallel: "1/2" means each worker had its own."""
    return "/".join(",".join(map(str, row["databases"][mode]))
                    for mode in ("serial", "parallel"))


def _load_lines(meta):
    load = meta.get("loadavg")
    if not load:
        return []
    return ["load average (1, 5, 15 min): "
            + ", ".join(f"{when} {' '.join(f'{v:.2f}' for v in values)}"
                        for when, values in load.items())]


def _memory_lines(memory):
    if not memory:
        return []
    lines = [f"{'memory (RSS around the run)':<42} {'tests':>7} {'start MB':>9} "
                 f"{'end MB':>9} {'growth MB':>10} {'KB/1k tests':>12}"]
    for m in memory:
        head = f"{m['title'][:42]:<42} {m['n_tests']:>7} "
        if m["status"] != "ok":
            lines.append(head + "FAILED: " + m.get("error", ""))
            continue
        lines.append(head + f"{m['rss_start'] / MB:>9.1f} {m['rss_end'] / MB:>9.1f} "
                     f"{m['growth_bytes'] / MB:>10.1f} "
                     f"{m['growth_per_1000_tests_bytes'] / 1024:>12.1f}")
    return lines

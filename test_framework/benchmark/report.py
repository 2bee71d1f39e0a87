"""The results as a plain-text table (stdout) and as JSON (a file).

Both are built from one dict (``build``) so the table and the file can never
disagree.  Times are per test in milliseconds; ``x ref`` divides a row's
median by the median of the reference row ("ours, rollback, PostgreSQL"),
so numbers from different machines compare through the ratio.  ``fixed``
is the per-run overhead left after the slope (throwaway database, schema,
first connection); ``conn/1k tests`` is the slope of client-side connection
counts (see ``child.ConnectionCounter``) scaled to 1,000 tests.
"""
import json
import platform
import sys

from .harness import summarise
from .scenarios import REFERENCE_KEY, TESTS_PER_CLASS

MB = 1024 * 1024
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
    out_rows = [_row_dict(row) for row in rows]
    ref = next((r for r in out_rows if r["key"] == REFERENCE_KEY and r["status"] == "ok"), None)
    for r in out_rows:
        ok = ref and r["status"] == "ok"
        r["ratio_to_reference"] = (r["per_test_ms"]["median"] / ref["per_test_ms"]["median"]
                                   if ok and ref["per_test_ms"]["median"] > 0 else None)
    return {
        "meta": dict(meta, python=sys.version.split()[0], platform=platform.platform(),
                     sizes=list(options.sizes), repeats=options.repeats,
                     tests_per_class=TESTS_PER_CLASS, reference=REFERENCE_KEY,
                     packages=package_versions(),
                     method="per-test cost = (t_large - t_small) / (n_large - n_small), "
                            "time measured inside each child around the test run"),
        "rows": out_rows,
        "memory": [_memory_dict(m) for m in memory],
        "failed": any(r["status"] != "ok" for r in out_rows)
                  or any(m["status"] != "ok" for m in memory),
    }


def _row_dict(row):
    s = row.scenario
    runs = row.runs
    per_test = summarise([1000 * r["per_test_s"] for r in runs])
    return {
        "key": s.key, "title": s.title, "runner": s.runner,
        "status": row.status if runs or row.status != "ok" else "failed",
        "error": row.error, "warnings": row.warnings,
        "per_test_ms": per_test,
        "fixed_ms": summarise([1000 * r["fixed_s"] for r in runs]),
        "connections_per_1000_tests": (summarise([r["connections_per_1000"] for r in runs])
                                       if s.postgres else None),
        "runs": runs,
    }


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
    return "-" if value is None else format(value, spec)


def table(doc):
    """Fixed-width text: one line per row, failed rows carry their error."""
    lines = [f"{'scenario':<42} {'runner':<8} {'median':>8} {'min':>8} {'max':>8} "
             f"{'x ref':>6} {'fixed':>8} {'conn/1k':>8}",
             f"{'':<42} {'':<8} {'ms/test':>8} {'ms/test':>8} {'ms/test':>8} "
             f"{'':>6} {'ms/run':>8} {'tests':>8}"]
    lines.append("-" * len(lines[0]))
    for r in doc["rows"]:
        head = f"{r['title'][:42]:<42} {r['runner']:<8} "
        if r["status"] != "ok":
            lines.append(head + "FAILED: " + (r["error"] or "no measurement"))
            continue
        pt, conns = r["per_test_ms"], r["connections_per_1000_tests"]
        lines.append(head + f"{pt['median']:>8.3f} {pt['min']:>8.3f} {pt['max']:>8.3f} "
                     f"{_fmt(r['ratio_to_reference'], '>6.2f')} "
                     f"{r['fixed_ms']['median']:>8.1f} "
                     f"{_fmt(conns and conns['median'], '>8.1f')}")
        lines.extend(f"{'':<4}note: {w}" for w in r["warnings"])
    lines.extend(_memory_lines(doc["memory"]))
    return "\n".join(lines)


def _memory_lines(memory):
    if not memory:
        return []
    lines = ["", f"{'memory (RSS around the run)':<42} {'tests':>7} {'start MB':>9} "
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

"""Shared by benchmarks/fuzz.py, abuse.py and soak.py: merge their numbers into
``benchmarks/results/reliability.json`` and re-render ``reliability.md`` from it."""

from __future__ import annotations

import json
import platform
from pathlib import Path

#: The issue-16 targets each top-level number is checked against in the Markdown summary.
TARGETS = {
    "fuzz_executions": (">=", 100_000),
    "fuzz_crashes": ("==", 0),
    "abuse_5xx": ("==", 0),
    "abuse_peak_rss_mb": ("<=", 1_500),
    "chunked_oversize_rejected": ("==", True),
    "soak_errors": ("==", 0),
    "soak_rss_growth_mb": ("<=", 50),
    "schemathesis_failures": ("==", 0),
    # issue 24
    "abuse_5xx_new_routes": ("==", 0),
    "abuse_peak_rss_mb_new_routes": ("<=", 1_500),
    "kill_sweep_partial_outputs": ("==", 0),
    "csv_injection_cells_escaped": ("==", True),
    "schemathesis_conformance_findings": ("==", 0),
}


def _meets(value, op: str, target) -> bool:
    return {">=": value >= target, "<=": value <= target, "==": value == target}[op]


def update_results(path: Path, values: dict, section: str, command: str) -> dict:
    """Merge ``values`` (top-level keys) into the results file and record ``command`` for ``section``."""
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.update(values)
    commands = results.setdefault("command", {})
    for stale in [name for name in commands if name.startswith(f"{section} (")]:
        del commands[stale]  # a full run re-measured the keys of its parts' earlier runs
    commands[section] = command
    results["machine"] = f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    path.with_suffix(".md").write_text(render(results))
    return results


def render(results: dict) -> str:
    lines = ["# Reliability (issues 16 and 24)", "", "| key | value | target | met |", "|---|---|---|---|"]
    for key, value in results.items():
        if isinstance(value, (dict, list)) or key == "machine":
            continue
        op, target = TARGETS.get(key, (None, None))
        met = "" if op is None else ("yes" if _meets(value, op, target) else "**no**")
        lines.append(f"| {key} | {value} | {'' if op is None else f'{op} {target}'} | {met} |")
    lines += ["", f"Machine: {results.get('machine', '')}", "", "## Commands", ""]
    lines += [f"- {section}: `{command}`" for section, command in results.get("command", {}).items()]
    details = ("fuzz_targets", "abuse_detail", "soak_detail", "schemathesis_detail", "abuse_new_routes_detail")
    for key in (*details, "kill_sweep_detail", "csv_injection_detail"):
        if key in results:
            lines += ["", f"## {key}", "", "```json", json.dumps(results[key], indent=2, default=str), "```"]
    return "\n".join(lines) + "\n"

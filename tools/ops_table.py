"""Generates the README's supported-operator table from the conformance allow-list.

Usage: python3 tools/ops_table.py --write README.md   (replace the table between the markers)
       python3 tools/ops_table.py --check README.md   (exit 1 if the README's table is stale)
Standard library only. The allow-list (Tests/ConformanceTests/allowlist.txt) has one section per
operator, `## OpType`, followed by case names that must pass and `!case  # reason` exclusions.
"""
import re
import sys
from pathlib import Path

ALLOWLIST = Path(__file__).resolve().parent.parent / "Tests/ConformanceTests/allowlist.txt"
BEGIN, END = "<!-- ops-table:begin -->", "<!-- ops-table:end -->"


def parse(path=ALLOWLIST):
    ops, current = {}, None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("## "):
            current = line[3:].strip()
            ops.setdefault(current, {"pass": [], "excluded": []})
        elif not line or line.startswith("#") or current is None:
            continue
        elif line.startswith("!"):
            name, _, reason = line[1:].partition("#")
            ops[current]["excluded"].append((name.strip(), reason.strip()))
        else:
            ops[current]["pass"].append(line.split()[0])
    return ops


def table(ops):
    rows = ["| Operator | Conformance cases passing | Excluded cases (reason) |", "|---|---:|---|"]
    for op in sorted(ops):
        excluded = ops[op]["excluded"]
        reasons = sorted({r for _, r in excluded})
        shown = "; ".join(r if len(r) <= 90 else r[:87] + "..." for r in reasons[:2])
        more = f" (+{len(reasons) - 2} more reasons)" if len(reasons) > 2 else ""
        text = f"{len(excluded)}: {shown}{more}" if excluded else ""
        name = "multi-operator models, expanded functions" if op == "Models" else op
        rows.append(f"| {name} | {len(ops[op]['pass'])} | {text} |")
    total = sum(len(v["pass"]) for v in ops.values())
    rows.append("")
    rows.append(f"{len(ops) - ('Models' in ops)} operator sections, {total} listed conformance cases (ONNX 1.22.0 backend data). "
                "Every exclusion's reason is in "
                "Tests/ConformanceTests/allowlist.txt; this table is generated from it by `make ops-table`.")
    return "\n".join(rows)


def main():
    mode, readme = sys.argv[1], Path(sys.argv[2])
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"{readme}: markers {BEGIN} / {END} missing")
        return 1
    generated = f"{BEGIN}\n{table(parse())}\n{END}"
    updated = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: generated, text, flags=re.S)
    if mode == "--write":
        readme.write_text(updated)
        return 0
    if updated != text:
        print(f"{readme}: the supported-operator table is stale: run `make ops-table`")
        return 1
    print(f"{readme}: supported-operator table is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

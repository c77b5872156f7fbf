"""The README's "Spatial inconsistency" tables, in Markdown, from the JSON that `elscli consistency` wrote.

    python benchmarks/consistency_readme.py OUTDIR/sweep.json OUTDIR/network.json > section.md

(`benchmarks/consistency_sweep.sh` runs it at the end.)  Every number comes from the two files; nothing
is typed in by hand, so a recalibrated schedule regenerates the section with the same script.
"""
from __future__ import annotations

import json
import sys

FEATURES = ("components", "holes", "end_points", "branch_points")


def q(s: dict, digits: int = 0) -> str:
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'])} [{f.format(s['q1'])}, {f.format(s['q3'])}]"


def frac(count: int, n: int) -> str:
    return f"{count / n:.0%} ({count}/{n})"


def sweep_table(sweep: dict) -> str:
    net = sweep["inputs"].get("network")
    bank = sweep["bank"]
    lines = ["| F | P (first → last step) | components | end points | inconsistent | copies |",
             "|---|---|---|---|---|---|"]
    for p in sweep["sweep"]:
        ps = p["patch_sizes"]
        lines.append(f"| {p['scale']:g} | {ps[0]} → {ps[-1]} | {q(p['components'])} | {q(p['end_points'])} | "
                     f"{frac(p['inconsistent_count'], p['samples'])} | {p.get('copy_fraction', float('nan')):.0%} |")
    if net is not None:
        lines.append(f"| network | — | {q(net['components'])} | {q(net['end_points'])} | "
                     f"{frac(net['inconsistent_count'], net['samples'])} | {net.get('copy_fraction', 0):.0%} |")
    lines.append(f"| bank (mnist-5k) | — | {q(bank['components'])} | {q(bank['end_points'])} | "
                 f"{frac(bank['inconsistent_count'], bank['images'])} | — |")
    return "\n".join(lines)


def network_table(network: dict) -> str:
    lines = ["| input | ink fraction | components | holes | end points | branch points | inconsistent |",
             "|---|---|---|---|---|---|---|"]
    b = network["bank"]
    lines.append(f"| bank (mnist-5k) | {q(b['ink_fraction'], 2)} | " + " | ".join(q(b[k]) for k in FEATURES)
                 + f" | {frac(b['inconsistent_count'], b['images'])} |")
    for name, s in network["inputs"].items():
        label = name if s["machine"] is None else f"{name} ({s['machine']})"
        lines.append(f"| {label} | {q(s['ink_fraction'], 2)} | " + " | ".join(q(s[k]) for k in FEATURES)
                     + f" | {frac(s['inconsistent_count'], s['samples'])} |")
    return "\n".join(lines)


def agreement_table(network: dict) -> str:
    lines = ["| run | samples | both inconsistent | network only | run only | neither | agreement | Cohen's κ | "
             "Spearman ρ of p |", "|---|---|---|---|---|---|---|---|---|"]
    for name, a in network.get("agreement_with_reference", {}).items():
        k = "undefined" if a["kappa"] is None else f"{a['kappa']:.2f}"
        rho = "undefined" if a["spearman_tail"] is None else f"{a['spearman_tail']:.2f}"
        lines.append(f"| {name} | {a['n']} | {a['both']} | {a['reference_only']} | {a['run_only']} | "
                     f"{a['neither']} | {a['agreement']:.0%} | {k} | {rho} |")
    return "\n".join(lines)


def main(argv) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    sweep, network = (json.load(open(p)) for p in argv)
    print(f"Score: {' & '.join(sweep['score_features'])}, level {sweep['level']:g}, ink > {sweep['threshold']:g}; "
          "median [q1, q3].\n")
    print(sweep_table(sweep), end="\n\n")
    print(network_table(network), end="\n\n")
    print(agreement_table(network))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

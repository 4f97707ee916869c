#!/usr/bin/env python3
"""Measures the explicit_request trigger on a labelled CSV of customer utterances.

Usage: scripts/measure-explicit.py PATH/TO/bitext-support-dev.csv [--handoffd BIN] [--config FILE]

Every `instruction` is run through `handoffd analyze`. Rows whose intent is
`contact_human_agent` are positives; every other intent is a negative, except
`contact_customer_service`, which mixes requests for a person with questions about
opening hours and is reported on its own line.
"""
import argparse
import csv
import json
import subprocess
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--handoffd", default="target/debug/handoffd")
    ap.add_argument("--config", default="config.toml")
    args = ap.parse_args()

    with open(args.csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    texts = [r["instruction"].replace("\n", " ") for r in rows]
    out = subprocess.run(
        [args.handoffd, "--config", args.config, "analyze"],
        input="\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    results = [json.loads(line) for line in out.stdout.splitlines()]
    if len(results) != len(rows):
        print(f"expected {len(rows)} results, got {len(results)}", file=sys.stderr)
        return 1

    tp = fp = fn = tn = 0
    svc_hit = svc = 0
    for row, res in zip(rows, results):
        fired = res["explicit_request"]
        intent = row["intent"]
        if intent == "contact_customer_service":
            svc += 1
            svc_hit += fired
        elif intent == "contact_human_agent":
            tp += fired
            fn += not fired
        else:
            fp += fired
            tn += not fired
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(f"rows: {len(rows)}")
    print(f"contact_human_agent: recall {recall:.4f} ({tp}/{tp + fn})")
    print(f"other intents: precision {precision:.4f} ({fp} false positives in {fp + tn})")
    print(f"F1: {f1:.4f}")
    print(f"contact_customer_service (reported apart): fired on {svc_hit}/{svc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

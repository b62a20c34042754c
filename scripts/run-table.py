#!/usr/bin/env python3
"""A training run's metrics as a markdown table, one row per epoch, for BENCHMARKS.md.

    scripts/run-table.py METRICS_JSONL [TEST_JSON]

METRICS_JSONL is a run's metrics.jsonl (or a shipped checkpoints/NAME.metrics.jsonl); TEST_JSON,
when given, is its test.json: the one test-set evaluation, printed under the table. The chosen
epoch (best validation accuracy, the one test.json names) is in bold.
"""
import json
import sys


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit(__doc__.strip())
    try:
        with open(argv[1]) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        test = None
        if len(argv) == 3:
            with open(argv[2]) as f:
                test = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"run-table: {e}")
    if not rows:
        sys.exit(f"run-table: {argv[1]} holds no epoch")
    chosen = test["epoch"] if test else None
    print("| epoch | lr at end | train loss | train acc | valid loss | valid acc | img/s | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        valid_loss = "-" if r.get("valid_loss") is None else f"{r['valid_loss']:.4f}"
        valid_acc = "-" if r.get("valid_acc") is None else f"{r['valid_acc']:.4f}"
        epoch = f"**{r['epoch']}**" if r["epoch"] == chosen else str(r["epoch"])
        print(
            f"| {epoch} | {r['lr']:.2e} | {r['train_loss']:.4f} | {r['train_acc']:.4f} "
            f"| {valid_loss} | {valid_acc} | {r['images_per_sec']:.0f} | {r['epoch_seconds']:.0f} |"
        )
    wall = rows[-1].get("wall_seconds")
    print()
    if wall is not None:
        print(f"Wall time of the run: {wall:,.0f} s ({wall / 3600:.1f} h).")
    if test:
        where = "the test set (validated on it)" if test.get("validated_on_test") else "validation"
        print(
            f"Test set, read once after training: epoch {test['epoch']} (chosen on {where}), "
            f"accuracy {test['accuracy']:.4f} ({test['correct']}/{test['total']}), "
            f"loss {test['loss']:.4f}."
        )


if __name__ == "__main__":
    main(sys.argv)

"""A training script as a researcher writes one, for the live-curve tests: logs a loss per step
with the Python helper (seedgrid.log(name, value, step): metrics.jsonl lines), sleeping between
steps, and optionally fails at the end (its live points then stay in the registry)."""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import seedgrid  # noqa: E402


def loss(step):
    return math.exp(-step / 20.0) + 0.1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--sleep", type=float, default=0.25)
    p.add_argument("--fail", type=int, default=0)
    a = p.parse_args()
    for step in range(a.steps):
        seedgrid.log("loss", loss(step), step=step)
        time.sleep(a.sleep)
    seedgrid.log("final_loss", loss(a.steps - 1))
    if a.fail:
        sys.exit("failing on purpose after the last step")


if __name__ == "__main__":
    main()

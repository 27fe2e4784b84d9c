#!/usr/bin/env python3
"""Metrics for bench/bayes-peers.sh, with the conventions of
mxguard_learn::metrics: a message is spam when p >= threshold; 1-AUC counts
tied (ham, spam) pairs as half; "FN at FP <= 0.1%" uses the lowest threshold
at which at most floor(0.001 * hams) hams score above it.

    bayes_metrics.py NAME=FILE ...    (FILE lines: fold, path, label, p)
"""
import math
import sys

THRESHOLD = 0.9


def auc(scores):
    v = sorted(scores)
    hams = sum(1 for _, s in v if not s)
    spams = len(v) - hams
    if not hams or not spams:
        return 1.0
    below = wins = 0.0
    i = 0
    while i < len(v):
        j, h, s = i, 0, 0
        while j < len(v) and v[j][0] == v[i][0]:
            if v[j][1]:
                s += 1
            else:
                h += 1
            j += 1
        wins += s * (below + h / 2)
        below += h
        i = j
    return wins / (hams * spams)


def fn_at_fp(scores, max_fp=0.001):
    ham = sorted((p for p, s in scores if not s), reverse=True)
    spam = [p for p, s in scores if s]
    if not ham or not spam:
        return 0.0
    allowed = math.floor(max_fp * len(ham) + 1e-9)
    t = ham[min(allowed, len(ham) - 1)]
    return 100.0 * sum(1 for p in spam if p <= t) / len(spam)


def metrics(scores):
    hams = sum(1 for _, s in scores if not s)
    spams = len(scores) - hams
    fp = sum(1 for p, s in scores if not s and p >= THRESHOLD)
    fn = sum(1 for p, s in scores if s and p < THRESHOLD)
    return (
        100 * (1 - auc(scores)),
        100 * fp / max(hams, 1),
        100 * fn / max(spams, 1),
        fn_at_fp(scores),
        hams,
        spams,
    )


def main():
    print(f"{'filter':<14} {'fold':<5} {'ham/spam':>10} {'1-AUC%':>8} {'FP%':>6} {'FN%':>6} {'FN%@FP<=0.1%':>13}")
    for arg in sys.argv[1:]:
        name, path = arg.split("=", 1)
        folds = {}
        for line in open(path):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            k, _, label, p = parts
            folds.setdefault(k, []).append((float(p), label == "spam"))
        rows = [(k, folds[k]) for k in sorted(folds, key=int)]
        rows.append(("all", [x for v in folds.values() for x in v]))
        for k, v in rows:
            a, fp, fn, fnfp, h, s = metrics(v)
            print(f"{name:<14} {k:<5} {f'{h}/{s}':>10} {a:8.3f} {fp:6.2f} {fn:6.2f} {fnfp:13.2f}")


if __name__ == "__main__":
    main()

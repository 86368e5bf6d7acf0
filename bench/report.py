"""One table from a pytest-benchmark JSON file: fastnn against fastnn.reference.

    pytest bench/ --benchmark-json=bench.json && python bench/report.py bench.json

For each case (benchmark group): fastnn's and the baseline's median (the baseline is
fastnn.reference, scikit-learn's estimator for the sklearn cases, or for the threads
case fastnn itself on one thread), their ratio
(baseline / fastnn: how many times faster fastnn is) and, where the case records
its FLOPs, fastnn's GFLOP/s beside the machine's own BLAS GEMM doing only the
case's matrix products, and fastnn's share of that GEMM throughput.
"""
import json
import sys


def _time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def rows(report):
    cases = {}
    for bench in report["benchmarks"]:
        impl = bench["name"].split("[", 1)[1].rstrip("]").split("-", 1)[0]
        cases.setdefault(bench["group"], {})[impl] = bench
    for group in sorted(cases, key=_order):
        impls = cases[group]
        baseline = next((b for b in ("reference", "sklearn", "one_thread") if b in impls),
                        None)
        if "fastnn" not in impls or baseline is None:
            continue
        fast = impls["fastnn"]["stats"]["median"]
        ref = impls[baseline]["stats"]["median"]
        row = [group, _time(fast), _time(ref), f"{ref / fast:.1f}x", "", "", "", ""]
        accuracy = [impls[i].get("extra_info", {}).get("test_accuracy")
                    for i in ("fastnn", baseline)]
        if None not in accuracy:
            row[7] = " / ".join(f"{a:.3f}" for a in accuracy)
        flops = impls["fastnn"].get("extra_info", {}).get("flops")
        if flops:
            row[4] = f"{flops / fast / 1e9:.1f}"
            if "blas_gemm" in impls:
                gemm = impls["blas_gemm"]["stats"]["median"]
                row[5] = f"{flops / gemm / 1e9:.1f}"
                row[6] = f"{100 * gemm / fast:.0f}%"
        yield row


def _order(group):
    words = group.split()
    sizes = ["tiny", "small", "mid", "large"]
    rank = next((sizes.index(w) for w in words if w in sizes), len(sizes))
    return (words[0], rank, group)


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: python bench/report.py BENCH.json")
    with open(argv[1]) as f:
        report = json.load(f)
    header = ["case", "fastnn", "baseline", "speed-up", "fastnn GFLOP/s",
              "BLAS GEMM GFLOP/s", "of GEMM", "test accuracy"]
    table = [header] + list(rows(report))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    machine = report.get("machine_info", {})
    print(f"{machine.get('cpu', {}).get('brand_raw', 'unknown CPU')}, "
          f"Python {machine.get('python_version', '?')}")
    for i, row in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


if __name__ == "__main__":
    main(sys.argv)

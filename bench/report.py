"""Tables from a pytest-benchmark JSON file.

    pytest bench/ --benchmark-json=bench.json && python bench/report.py bench.json

The peers table (bench/test_bench_peers.py): for each case, the fastest round of
fastnn, scikit-learn and PyTorch, how many times faster fastnn is than each, fastnn's
GFLOP/s (the FLOPs of its training steps' matrix products over its time) and its share
of the machine's GEMM peak measured in the same run (the "GEMM peak" group of the
case's dtype), the share its training steps alone reach (the FLOPs over the fastest
round's time in its epochs' compiled calls, without the fit's set-up), and each one's
test score (accuracy, or R^2 for a regressor).

The engine table (the other files): for each case (benchmark group), fastnn's and the
baseline's median (the baseline is fastnn.reference, or for the threads case fastnn
itself on one thread), their ratio (baseline / fastnn: how many times faster fastnn
is) and, where the case records its FLOPs, fastnn's GFLOP/s beside the machine's own
BLAS GEMM doing only the case's matrix products, and fastnn's share of that.
"""
import json
import sys

PEERS = ("fastnn", "sklearn", "torch")


def _time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _cases(report):
    cases = {}
    for bench in report["benchmarks"]:
        impl = bench["name"].split("[", 1)[1].rstrip("]").split("-", 1)[0]
        cases.setdefault(bench["group"], {})[impl] = bench
    return cases


def peer_rows(report):
    cases = _cases(report)
    peaks = {}
    for group, impls in cases.items():
        if group.startswith("GEMM peak"):
            bench = next(iter(impls.values()))
            peaks[bench["extra_info"]["dtype"]] = (bench["extra_info"]["flops"]
                                                   / bench["stats"]["min"])
    for group in sorted(g for g in cases if g.startswith("peers: ")):
        impls = cases[group]
        if "fastnn" not in impls:
            continue
        best = {name: min(impls[name]["extra_info"]["round_seconds"])
                for name in PEERS if name in impls}
        info = impls["fastnn"]["extra_info"]
        speed = info["flops"] / best["fastnn"]
        peak = peaks.get(info["dtype"])
        row = [group[len("peers: "):], str(info["threads"])]
        row += [_time(best[name]) if name in best else "-" for name in PEERS]
        row += [f"{best[name] / best['fastnn']:.1f}x" if name in best else "-"
                for name in PEERS[1:]]
        row += [f"{speed / 1e9:.1f}", f"{100 * speed / peak:.0f}%" if peak else "-"]
        epochs = info.get("epoch_seconds")
        row.append(f"{100 * info['flops'] / min(epochs) / peak:.0f}%"
                   if peak and epochs else "-")
        row.append(" / ".join(f"{impls[name]['extra_info']['test_score']:.3f}"
                              if name in impls else "-" for name in PEERS))
        yield row
    for dtype, peak in sorted(peaks.items()):
        yield [f"GEMM peak {dtype} (numpy, 1536^3)", "", "", "", "", "", "",
               f"{peak / 1e9:.1f}", "100%", "", ""]


def engine_rows(report):
    cases = _cases(report)
    for group in sorted(cases, key=_order):
        impls = cases[group]
        baseline = next((b for b in ("reference", "one_thread") if b in impls), None)
        if "fastnn" not in impls or baseline is None:
            continue
        fast = impls["fastnn"]["stats"]["median"]
        ref = impls[baseline]["stats"]["median"]
        row = [group, _time(fast), _time(ref), f"{ref / fast:.1f}x", "", "", ""]
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


def _print(header, rows):
    table = [header] + list(rows)
    if len(table) == 1:
        return
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print()


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: python bench/report.py BENCH.json")
    with open(argv[1]) as f:
        report = json.load(f)
    machine = report.get("machine_info", {})
    print(f"{machine.get('cpu', {}).get('brand_raw', 'unknown CPU')}, "
          f"Python {machine.get('python_version', '?')}\n")
    _print(["case", "threads", "fastnn", "scikit-learn", "PyTorch", "vs scikit-learn",
            "vs PyTorch", "fastnn GFLOP/s", "of GEMM peak", "steps of GEMM peak",
            "test score fastnn / sklearn / torch"], peer_rows(report))
    _print(["case", "fastnn", "baseline", "speed-up", "fastnn GFLOP/s",
            "BLAS GEMM GFLOP/s", "of GEMM"], engine_rows(report))


if __name__ == "__main__":
    main(sys.argv)

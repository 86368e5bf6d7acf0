"""The `fastnn` command: see the lessons of initialisation and activations.

    fastnn histograms [--activation sigmoid --init 1 | --grid] [--out fig.png]
    fastnn compare-init [--dataset circles|fastnn-circles|spiral] [--out fig.png]
    fastnn compare-activations [--out fig.png]
    fastnn vanishing [--out fig.png]
    fastnn dead-relu [--out fig.png]
    fastnn demo --out DIR
    fastnn shapes 2 10 5 1 [--m 300]
    fastnn export MODEL.npz MODEL.onnx

Numbers go to standard output, progress to standard error; --out saves a figure
(matplotlib, the `plot` extra). Every command takes --help, every experiment --seed.

Every option is checked while the arguments are parsed, before any work: each one's
argparse type below refuses a bad value with one line naming it, exit status 2.
"""
import argparse
import functools
import math
import os
import sys
import tempfile
import time

from fastnn import experiments, plots
from fastnn._version import __version__
from fastnn.model import load

BARS = " ▁▂▃▄▅▆▇█"
ASCII_BARS = " .:-=+*#%@"

#: The largest counts the options take, which keep every command within a few GB of
#: memory (histograms keeps every layer's samples x 100 activations, about 2 GB at
#: the limit; the spiral draws all its batches up front) and lines of at most 1000
#: bins. The epochs share the iterations' limit.
MAX_SAMPLES = 100_000
MAX_BINS = 1000
MAX_STEPS = 100_000  # --iterations and --epochs
MAX_DEPTH = 1000
#: The limits of `fastnn shapes`, which allocates nothing: they only refuse the absurd
#: (a width of a million units, a billion samples, a thousand layers).
MAX_WIDTH = 1_000_000
MAX_M = 1_000_000_000
MAX_LAYERS = 1000
#: The stds --init takes. Smaller ones leave activations too close together for
#: finite-sized histogram bins; larger ones overflow float64 in deep enough ReLU layers.
STD_RANGE = (1e-300, 1e6)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on standard error, exit status 2;
    `check(parser, args)`, when set, checks what no single option can (and fills the
    defaults that depend on the others)."""

    check = None

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if self.check is not None:
            self.check(self, namespace)
        return namespace, extras


def main(argv=None):
    """Run the ``fastnn`` command line.

    Every option is checked before any work starts. Whatever fails during the work
    is reported on one line of standard error, never as a traceback; so is Ctrl-C
    from the moment main is called, while the options are parsed and checked (which
    imports matplotlib for --out) as during the work.

    Parameters
    ----------
    argv : list of str or None, default=None
        The arguments after the program name; None reads sys.argv[1:].

    Returns
    -------
    status : int
        0 on success; 1 when the work fails (one line on standard error, such as a
        figure that cannot be written because the disk is full; nothing when the
        reader of standard output went away, as ``| head`` does); 130 when
        interrupted (Ctrl-C).

    Raises
    ------
    SystemExit
        For --help and --version (status 0), or a bad option (status 2, one line on
        standard error naming the option), before any work.
    """
    prog = "fastnn"  # until the command is known
    try:
        args = _parser().parse_args(argv)  # which imports matplotlib for --out
        prog = f"fastnn {args.command}"
        args.run(args)
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no more writes
        return 1
    except (KeyboardInterrupt, Exception) as error:  # one line, never a traceback
        if _interrupt(error):
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        message = " ".join(str(error).split())
        print(f"{prog}: error: {type(error).__name__}: {message}", file=sys.stderr)
        return 1
    return 0


def _interrupt(error):
    """Whether error is Ctrl-C or was caused by it: Python turns a KeyboardInterrupt
    raised in some hooks (__set_name__ while a class body runs, as during matplotlib's
    import) into a RuntimeError whose __cause__ is the interrupt."""
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return True
        error = error.__cause__
    return False


# ------------------------------------------------------------------ option types
# Each raises argparse.ArgumentTypeError, which the parser turns into one line
# naming the option, exit status 2.

def _integer(low, high=None):
    """An argparse type: an int >= low, and <= high unless high is None."""
    span = f">= {low}" if high is None else f"from {low} to {high}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected an integer {span}; got {text!r}")
        return value
    return parse


def _positive_number(text):
    """An argparse type: a positive finite float."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    return value


def _init_value(text):
    """--init: a std within STD_RANGE, or a scheme name."""
    if text in experiments.HISTOGRAM_INITS:
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    low, high = STD_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"expected a std from {low:g} to {high:.0f} such as 1 or 0.01, or one of "
            f"{', '.join(experiments.HISTOGRAM_INITS)}; got {text!r}")
    return value


def _figure_path(text):
    """--out of the figures: a file matplotlib can write, in a writable folder."""
    filetypes = _matplotlib_filetypes()
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is a folder; name a file in it, such as "
            f"{os.path.join(text, 'fig.png')!r}")
    extension = os.path.splitext(text)[1][1:].lower()
    if extension not in filetypes:
        said = f"has the extension .{extension}" if extension else "has no extension"
        raise argparse.ArgumentTypeError(
            f"{text!r} {said}; matplotlib writes .{', .'.join(sorted(filetypes))}")
    _check_folder(os.path.dirname(text) or os.curdir)
    if os.path.exists(text) and not os.access(text, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot overwrite {text!r}: permission denied")
    return text


def _report_folder(text):
    """demo's --out: a folder that exists, or can be made, and can be written in."""
    _matplotlib_filetypes()
    if not text:
        raise argparse.ArgumentTypeError("expected a folder; got ''")
    existing = os.path.abspath(text)
    while not os.path.exists(existing):  # makedirs creates the missing folders
        existing = os.path.dirname(existing)
    _check_folder(existing)
    return text


def _matplotlib_filetypes():
    """The extensions matplotlib saves figures as; refuses --out without matplotlib."""
    try:
        return plots.figure_filetypes()
    except plots.PlottingUnavailable as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _check_folder(folder):
    """Refuse folder unless it is a folder a file can be created in (tried, not
    guessed from the permission bits: read-only file systems and root differ)."""
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{folder!r} is not a folder" if os.path.exists(
            folder) else f"folder {folder!r} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"cannot create a file in folder {folder!r} ({error.strerror or error})"
        ) from None


# ------------------------------------------------------------------ output helpers

def _bars(counts):
    """A histogram as one line of block characters (ASCII where the terminal can't)."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        BARS.encode(encoding)
        bars = BARS
    except (UnicodeEncodeError, LookupError):
        bars = ASCII_BARS
    top = max(int(max(counts)), 1)
    return "".join(bars[math.ceil(c / top * (len(bars) - 1))] for c in counts)


def _table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _percent(x):
    return f"{100 * x:.0f}%"


def _accuracy(x):
    """A share as a percentage with up to four digits: 50%, 99.33%."""
    return f"{100 * x:.4g}%"


def _number(x):
    """Three decimals, or three significant digits once the number is large."""
    return f"{x:.3f}" if abs(x) < 1e5 else f"{x:.3e}"


def _ratio(first, last):
    """first / last as text, also when last is 0."""
    if last == 0:
        return "inf" if first else "undefined (0 / 0)"
    return f"{first / last:.2e}"


def _progress(label, done, total, loss):
    print(f"  {label}: {done}/{total}, loss {loss:.4g}", file=sys.stderr, flush=True)


def _init_label(init_scheme):
    return f"std={init_scheme:g}" if isinstance(init_scheme, float) else init_scheme


# ------------------------------------------------------------------ commands

def histograms_text(activation, init_scheme, records):
    """The table that ``fastnn histograms`` prints for one case.

    Parameters
    ----------
    activation : str
        The hidden activation, for the heading.
    init_scheme : float or str
        The std or scheme name, for the heading.
    records : sequence of fastnn.diagnostics.ActivationStats
        One per layer, as fastnn.experiments.histograms returns them (not empty).

    Returns
    -------
    text : str
        A heading line, then a table of mean, std, saturated and zero shares and a
        one-line histogram per layer.
    """
    lo, hi = records[0].hist[1][0], records[0].hist[1][-1]
    span = f"[{lo:.3g}, {hi:.3g}]"
    rows = [[r.layer + 1, _number(r.mean), _number(r.std), _percent(r.saturated),
             _percent(r.zero), _bars(r.hist[0])] for r in records]
    return (f"{activation}, init {_init_label(init_scheme)}\n"
            + _table(["layer", "mean", "std", "saturated", "zero", f"histogram {span}"], rows))


def _histograms_options(parser, args):
    """--grid draws its own seven cases: --activation or --init beside it is refused
    (it would be ignored); without it they default to sigmoid and std 1."""
    for name in ("activation", "init"):
        if args.grid and getattr(args, name) is not None:
            parser.error(f"argument --grid: not allowed with --{name} (the grid draws "
                         "its own cases)")
    args.activation = args.activation or "sigmoid"
    args.init = 1.0 if args.init is None else args.init


def run_histograms(args):
    """``fastnn histograms``: print activation statistics, optionally save a figure.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options: grid, activation, init, samples, bins, seed and out.

    Raises
    ------
    TypeError, ValueError
        If fastnn.experiments.histograms refuses an option.
    fastnn.plots.PlottingUnavailable
        If args.out is set and matplotlib is missing.
    """
    cases = experiments.HISTOGRAM_GRID if args.grid else [(args.activation, args.init)]
    print(f"{args.samples} standard-normal samples through 5 layers of 100 units, no biases\n")
    rows = []
    for activation, init_scheme in cases:
        records = experiments.histograms(activation, init_scheme, n_samples=args.samples,
                                         bins=args.bins, seed=args.seed)
        print(histograms_text(activation, init_scheme, records) + "\n")
        rows.append((f"{activation}\n{_init_label(init_scheme)}", records))
    if args.out:
        print(f"saved {plots.histograms(rows, args.out)}")


#: compare-init's --dataset names of the circles, and compare_init_circles's names.
CIRCLE_DATASETS = {"circles": "course", "fastnn-circles": "fastnn"}


def run_compare_init(args):
    """``fastnn compare-init``: train the initialisations side by side, print the losses.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options: dataset ("circles", the course's; "fastnn-circles" or
        "spiral"), iterations (None for the dataset's default), seed and out.

    Raises
    ------
    TypeError, ValueError
        If the experiment refuses an option.
    fastnn.DivergenceError
        If a network's training diverges.
    fastnn.plots.PlottingUnavailable
        If a figure is asked for (args.out) and matplotlib is not installed.
    """
    if args.dataset == "spiral":
        _compare_init_spiral(args)
    else:
        _compare_init_circles(args)


def _run_experiment(args, experiment, default_iterations, describe):
    """Print what runs (describe(iterations)), then run the experiment with the
    command's seed and progress; returns iterations, results and data."""
    iterations = args.iterations or default_iterations
    print(describe(iterations))
    results, data = experiment(iterations, seed=args.seed, progress=_progress)
    return iterations, results, data


def _compare_init_circles(args):
    dataset = CIRCLE_DATASETS[args.dataset]
    iterations, results, data = _run_experiment(
        args, functools.partial(experiments.compare_init_circles, dataset=dataset),
        15_000, lambda n: _circles_description(dataset, args.seed, n))
    rows = [[i] + [f"{r.losses[i]:.7f}" for r in results]
            for i in range(0, iterations, 1000)]
    print(_table(["iteration"] + [r.label for r in results], rows))
    print("\ncost: the mean cross-entropy over the 300 training points, before the "
          "iteration's update")
    if dataset == "course" and args.seed == 0:
        print(f"The course printed inf at iteration 0 for random x10: its cost takes the "
              f"log of 1 - sigmoid(z),\nand the sigmoid rounds to 1 on the outer circle; "
              f"fastnn's cross-entropy from the logits\ngives the finite "
              f"{results[1].losses[0]:.1f}. Its later random x10 costs differ from these "
              f"by less than 0.001:\nweights that large make the run sensitive to "
              f"rounding (the course's own code differs as much\non today's numpy).")
    print()
    print(_table(["init", "train accuracy", "test accuracy"],
                 [[r.label, _accuracy(r.train_score), _accuracy(r.test_score)]
                  for r in results]))
    if args.out:
        title = "the course's" if dataset == "course" else "fastnn's"
        print("saved " + plots.loss_and_boundaries(results, data, args.out,
                                                   f"{title} circles: cost"))
    return results


def _circles_description(dataset, seed, iterations):
    """What compare-init runs on the circles (dataset "course" or "fastnn")."""
    if dataset == "course":
        data = (f"the course's circles: scikit-learn's make_circles (noise 0.05, inner "
                f"radius 0.8),\n300 training points after np.random.seed({seed + 1}) and "
                f"100 test points after np.random.seed({seed + 2})")
    else:
        data = (f"fastnn's circles: fastnn.datasets.make_circles (noise 0.05, inner "
                f"radius 0.5),\n300 training points with seed {seed + 1} and 100 test "
                f"points with seed {seed + 2}")
    return (f"{data};\nweights after np.random.seed({seed + 3}): randn(n[l], n[l-1]) "
            f"times 10 (random x10) or sqrt(2 / n[l-1]) (he),\nzeros for zeros, biases 0; "
            f"[2, 10, 5, 1] relu/sigmoid, full-batch gradient descent, lr 0.01, "
            f"{iterations} iterations")


def _compare_init_spiral(args):
    iterations, results, _ = _run_experiment(
        args, experiments.compare_init_spiral, 2000,
        lambda n: f"spiral (1500 samples, 3 classes), [2, 100, 100, 100, 100, 3] "
                  f"relu/softmax, SGD lr 0.01, batch 128, {n} iterations, the same "
                  f"batches for each init")
    step = max(1, iterations // 10)
    rows = [[i + 1] + [f"{r.losses[i]:.4f}" for r in results]
            for i in sorted({*range(0, iterations, step), iterations - 1})]
    print(_table(["iteration"] + [r.label for r in results], rows))
    print(f"\nln 3 = {math.log(3):.4f}: a network that has learnt nothing sits there.")
    print(_table(["init", "mean loss, last 100 iterations", "train accuracy"],
                 [[r.label, f"{_tail_mean(r.losses):.4f}", _percent(r.train_score)]
                  for r in results]))
    if args.out:
        print("saved " + plots.loss_curves(results, args.out, "spiral: loss per iteration",
                                           reference_line=(math.log(3), "ln 3")))
    return results


def _tail_mean(losses, n=100):
    tail = losses[-n:]
    return sum(tail) / len(tail)


def run_compare_activations(args):
    """``fastnn compare-activations``: train each hidden activation, print the scores.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options: epochs, seed and out.

    Returns
    -------
    results : list of fastnn.experiments.RunResult
        One per activation.

    Raises
    ------
    TypeError, ValueError
        If fastnn.experiments.compare_activations refuses epochs or seed.
    fastnn.DivergenceError
        If training diverges.
    fastnn.plots.PlottingUnavailable
        If args.out is given but matplotlib is absent.
    """
    print(f"spiral (600 train, 300 test, 3 classes), [2, 32, 32, 3] softmax, SGD lr 0.1, "
          f"batch 32, {args.epochs} epochs; each activation with its matching init "
          f"(Xavier for sigmoid and tanh, He for relu and leaky_relu)")
    results, _ = experiments.compare_activations(args.epochs, seed=args.seed,
                                                 progress=_progress)
    print(_table(["activation", "final loss", "train accuracy", "test accuracy"],
                 [[r.label, f"{r.losses[-1]:.4f}", _percent(r.train_score),
                   _percent(r.test_score)] for r in results]))
    print("\ntanh beats sigmoid in hidden layers (zero-centred, stronger gradients); ReLU "
          "is the default; when unsure, try them all.")
    if args.out:
        print("saved " + plots.loss_curves(results, args.out,
                                           "hidden activations: loss per epoch", log=True))
    return results


def run_vanishing(args):
    """``fastnn vanishing``: print ||dW|| per layer of deep sigmoid and ReLU networks.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options: depth (the number of hidden layers), seed and out.

    Returns
    -------
    norms : dict of str to fastnn.diagnostics.Records
        {"sigmoid": records, "relu": records} of GradientNorms.

    Raises
    ------
    TypeError, ValueError
        If fastnn.experiments.vanishing refuses depth or seed.
    fastnn.plots.PlottingUnavailable
        If args.out is set and there is no matplotlib.
    """
    norms = experiments.vanishing(depth=args.depth, seed=args.seed)
    print(f"{args.depth} hidden layers of 32 units on the moons, untrained: ||dW|| per layer")
    sigmoid, relu = norms["sigmoid"], norms["relu"]
    print(_table(["layer", "sigmoid (Xavier)", "relu (He)"],
                 [[s.layer + 1, f"{s.dW_norm:.3e}", f"{r.dW_norm:.3e}"]
                  for s, r in zip(sigmoid, relu)]))
    for name, records in norms.items():
        print(f"{name}: first layer / last layer = "
              f"{_ratio(records[0].dW_norm, records[-1].dW_norm)}")
    if args.out:
        print(f"saved {plots.gradient_norms(norms, args.out)}")
    return norms


def run_dead_relu(args):
    """``fastnn dead-relu``: print the dead ReLU units after training with two lrs.

    A run that diverges is reported in the table (the step at which it did, and the
    dead units of its last finite weights), not as an error.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options: lr, large_lr, epochs, seed and out.

    Returns
    -------
    runs : list of fastnn.experiments.DeadReluRun
        One per learning rate, as fastnn.experiments.dead_relu returns them.

    Raises
    ------
    TypeError, ValueError
        If the experiment refuses a learning rate, epochs or seed.
    fastnn.plots.PlottingUnavailable
        If a figure is wanted (args.out) and matplotlib is missing.
    OSError
        If the figure cannot be written.
    """
    print(f"spiral (600 samples, 3 classes), [2, 64, 64, 64, 3] relu (He)/softmax, SGD, "
          f"batch 32, {args.epochs} epochs, lr {args.lr:g} and {args.large_lr:g}")
    runs = experiments.dead_relu((args.lr, args.large_lr), args.epochs, seed=args.seed,
                                 progress=_progress)
    n_hidden = len(runs[0].net.layers) - 1
    print(_table(["lr"] + [f"dead in hidden {k}" for k in range(1, n_hidden + 1)]
                 + ["diverged"],
                 [[f"{run.lr:g}"] + _dead_cells(run) + [_diverged(run) or "no"]
                  for run in runs]))
    if any(run.diverged_at or run.records is None for run in runs):
        print("\nA run that diverged keeps its last finite weights (from before the "
              "failing step);\nits dead units are counted with those. overflow: the "
              "weights overflow float64\non the data, so no unit can be counted.")
    if args.out:
        print(f"saved {plots.dead_units(runs, args.out)}")
    return runs


def _dead_cells(run):
    """The dead fraction of each hidden layer of a DeadReluRun, or "overflow"."""
    if run.records is None:
        return ["overflow"] * (len(run.net.layers) - 1)
    return [_percent(r.fraction) for r in run.records]


def _diverged(run):
    return None if run.diverged_at is None else f"at step {run.diverged_at}"


def run_demo(args):
    """``fastnn demo``: every experiment, small, into a report folder.

    Everything runs at a size that takes well under a minute; the folder gets six
    figures and summary.md, a Markdown summary of the numbers.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed options: out (the folder, created if needed) and seed.

    Raises
    ------
    fastnn.plots.PlottingUnavailable
        If matplotlib is missing, when the first figure is drawn (the command's
        parser refuses --out without matplotlib before anything runs).
    OSError
        If the folder or a file in it cannot be written.
    TypeError, ValueError
        If the experiments refuse the seed.
    """
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    path = lambda name: os.path.join(args.out, name)
    summary = ["# fastnn demo", "",
               f"fastnn {__version__}, seed {args.seed}. Every number below comes from "
               "this run.", ""]
    for section in (_demo_histograms, _demo_init_circles, _demo_init_spiral,
                    _demo_activations, _demo_vanishing, _demo_dead_relu):
        summary += section(args.seed, path)
    with open(path("summary.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(summary) + "\n")
    print(f"wrote {args.out}/summary.md and 6 figures in {time.perf_counter() - start:.1f} s")


# Each section of the demo runs one experiment, saves its figure at path(name) and
# returns its lines of the Markdown summary.

def _demo_histograms(seed, path):
    print("histograms ...", file=sys.stderr)
    rows = [(f"{a}\n{_init_label(i)}", experiments.histograms(a, i, seed=seed))
            for a, i in experiments.HISTOGRAM_GRID]
    plots.histograms(rows, path("histograms.png"))
    summary = ["## Activation histograms", "",
               "1000 samples through 5 layers of 100 units. Mean, std and saturated "
               "share of each layer's activations:", "", "![](histograms.png)", "",
               "| case | " + " | ".join(f"layer {k}" for k in range(1, 6)) + " |",
               "|---|" + "---|" * 5]
    for title, records in rows:
        summary.append(f"| {title.replace(chr(10), ' ')} | " + " | ".join(
            f"{r.mean:.2f} / {r.std:.3f} / {_percent(r.saturated)}" for r in records) + " |")
    return summary


def _demo_init_circles(seed, path):
    print("compare-init (the course's circles) ...", file=sys.stderr)
    results, data = experiments.compare_init_circles(seed=seed, progress=_progress)
    plots.loss_and_boundaries(results, data, path("compare_init_circles.png"),
                              "the course's circles: cost")
    summary = ["", "## Initialisation on the course's circles (the course's exercise)", "",
               "![](compare_init_circles.png)", "", "| init | first cost | final cost | "
               "train | test |", "|---|---|---|---|---|"]
    return summary + [f"| {r.label} | {r.losses[0]:.4g} | {r.losses[-1]:.4g} | "
                      f"{_accuracy(r.train_score)} | {_accuracy(r.test_score)} |"
                      for r in results]


def _demo_init_spiral(seed, path):
    print("compare-init (spiral) ...", file=sys.stderr)
    results, _ = experiments.compare_init_spiral(1000, seed=seed, progress=_progress)
    plots.loss_curves(results, path("compare_init_spiral.png"), "spiral: loss per iteration",
                      reference_line=(math.log(3), "ln 3"))
    summary = ["", "## Initialisation of a deep ReLU network (spiral, 1000 iterations)", "",
               "![](compare_init_spiral.png)", "", f"ln 3 = {math.log(3):.4f}", "",
               "| init | mean loss, last 100 iterations |", "|---|---|"]
    return summary + [f"| {r.label} | {_tail_mean(r.losses):.4f} |" for r in results]


def _demo_activations(seed, path):
    print("compare-activations ...", file=sys.stderr)
    results, _ = experiments.compare_activations(seed=seed, progress=_progress)
    plots.loss_curves(results, path("compare_activations.png"),
                      "hidden activations: loss per epoch", log=True)
    summary = ["", "## Hidden activations", "", "![](compare_activations.png)", "",
               "| activation | final loss | train | test |", "|---|---|---|---|"]
    return summary + [f"| {r.label} | {r.losses[-1]:.4f} | {_percent(r.train_score)} | "
                      f"{_percent(r.test_score)} |" for r in results]


def _demo_vanishing(seed, path):
    print("vanishing ...", file=sys.stderr)
    norms = experiments.vanishing(seed=seed)
    plots.gradient_norms(norms, path("vanishing.png"))
    summary = ["", "## Vanishing gradients (10 hidden layers)", "", "![](vanishing.png)", ""]
    return summary + [f"- {name}: ||dW|| of the first layer / the last = "
                      f"{_ratio(records[0].dW_norm, records[-1].dW_norm)}"
                      for name, records in norms.items()]


def _demo_dead_relu(seed, path):
    print("dead-relu ...", file=sys.stderr)
    runs = experiments.dead_relu(seed=seed, progress=_progress)
    plots.dead_units(runs, path("dead_relu.png"))
    summary = ["", "## Dead ReLU units", "", "![](dead_relu.png)", ""]
    return summary + [f"- lr {run.lr:g}: dead units per hidden layer "
                      + ", ".join(_dead_cells(run))
                      + (f" (diverged {_diverged(run)})" if run.diverged_at else "")
                      for run in runs]


def run_shapes(args):
    """``fastnn shapes``: the notes' "check the matrix dimensions", layer by layer.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments: layer_sizes (the widths, input first) and m (samples).

    Returns
    -------
    shapes : list of fastnn.experiments.LayerShapes
        One per layer, as fastnn.experiments.layer_shapes returns them.
    """
    shapes = experiments.layer_shapes(args.layer_sizes, args.m)
    n_in, m = args.layer_sizes[0], args.m
    names = ["W", "b", "Z", "A", "dZ", "dW", "db"]
    print(f"layer_sizes {args.layer_sizes}, m = {m}: dW and db have the shapes of W and "
          f"b, dZ that of Z\n")
    print(f"the notes' columns, one per sample: Z[l] = W[l] A[l-1] + b[l]; A[0] = X: "
          f"{(n_in, m)}")
    print(_table(["layer"] + [f"{name}[l]" for name in names] + ["parameters"],
                 [[s.layer] + [s.columns[name] for name in names] + [s.parameters]
                  for s in shapes]))
    print(f"\nfastnn's rows, one per sample: Z = A_prev @ W.T + b; X: {(m, n_in)}")
    print(_table(["layer"] + names, [[s.layer] + [s.rows[name] for name in names]
                                     for s in shapes]))
    print(f"\n{sum(s.parameters for s in shapes)} parameters in all. W is the same "
          f"matrix in both conventions;\nfastnn's Z, A and dZ are the notes' transposed, "
          f"and its b is the notes' b[l] flattened.")
    return shapes


class _LayerSizes(argparse.Action):
    """shapes' widths: from 2 to MAX_LAYERS + 1 of them (each checked by its type)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if not 2 <= len(values) <= MAX_LAYERS + 1:
            raise argparse.ArgumentError(
                self, f"expected from 2 to {MAX_LAYERS + 1} widths, input first, such "
                      f"as 2 10 5 1; got {len(values)}")
        setattr(namespace, self.dest, values)


def run_export(args):
    """``fastnn export``: write a model saved by MLP.save as an ONNX file.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed arguments: model (the .npz) and output (the .onnx).

    Raises
    ------
    SystemExit
        Status 2, after one line on standard error, if the onnx package is missing,
        the model file is not a fastnn model, or a file cannot be read or written.
    """
    try:
        from fastnn.onnx import export
        export(load(args.model), args.output)
    except (ImportError, OSError, ValueError) as error:  # bad arguments: the files
        print(f"fastnn export: error: {' '.join(str(error).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {args.output}")


# ------------------------------------------------------------------ the parser

def _parser():
    parser = _Parser(prog="fastnn", description="See the lessons of initialisation and "
                     "activation functions, with real numbers and pictures.")
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)

    def command(name, run, help, out=_figure_path, out_help="save the figure here; the "
                "extension picks the format: .png, .pdf, .svg, ...", out_required=False):
        sub = commands.add_parser(name, help=help, description=help)
        sub.add_argument("--seed", type=_integer(0, experiments.MAX_SEED), default=0,
                         help="random seed (default 0); at most "
                              f"{experiments.MAX_SEED}")
        sub.add_argument("--out", type=out, metavar="PATH", help=out_help,
                         required=out_required)
        sub.set_defaults(run=run)
        return sub

    sub = command("histograms", run_histograms, "activation histograms of a deep random "
                  "network (Deep Learning from Scratch, 6.2)")
    sub.add_argument("--activation", choices=["sigmoid", "tanh", "relu", "leaky_relu"],
                     help="default sigmoid")
    sub.add_argument("--init", type=_init_value,
                     help=f"a std such as 1 or 0.01 (from {STD_RANGE[0]:g} to "
                          f"{STD_RANGE[1]:.0f}), or xavier, lecun, he (default 1)")
    sub.add_argument("--grid", action="store_true", help="the classic grid of seven "
                     "cases, instead of one --activation and --init")
    sub.check = _histograms_options
    _count(sub, "--samples", MAX_SAMPLES, 1000)
    _count(sub, "--bins", MAX_BINS, 30)

    sub = command("compare-init", run_compare_init, "zeros, random and He (the course's "
                  "exercise on its circles), or std=0.01, Xavier and He (spiral) "
                  "initialisation, trained side by side")
    sub.add_argument("--dataset", choices=[*CIRCLE_DATASETS, "spiral"], default="circles",
                     help="circles: the course's (default); fastnn-circles: fastnn's own "
                          "circles; spiral: the book's deep comparison")
    _count(sub, "--iterations", MAX_STEPS, None,
           "default 15000 (circles) or 2000 (spiral)")

    sub = command("compare-activations", run_compare_activations,
                  "sigmoid, tanh, relu and leaky_relu hidden layers on one problem")
    _count(sub, "--epochs", MAX_STEPS, 100)

    sub = command("vanishing", run_vanishing,
                  "gradient norm per layer: deep sigmoid against deep ReLU")
    _count(sub, "--depth", MAX_DEPTH, 10, "hidden layers (default 10)")

    sub = command("dead-relu", run_dead_relu,
                  "dead ReLU units after training with a sensible and a too-large lr")
    sub.add_argument("--lr", type=_positive_number, default=0.01, help="default 0.01")
    sub.add_argument("--large-lr", type=_positive_number, default=3.0,
                     help="default 3; a run that diverges is reported in the table")
    _count(sub, "--epochs", MAX_STEPS, 30)

    command("demo", run_demo, "all of the above, small, into a report folder of figures "
            "and a Markdown summary", out=_report_folder,
            out_help="the report folder (created if needed)", out_required=True)
    _tool_commands(commands)
    return parser


def _count(sub, option, high, default, help=None):
    """Add a count option to sub: an integer from 1 to high."""
    sub.add_argument(option, type=_integer(1, high), default=default,
                     help=f"{help or f'default {default}'}; at most {high}")


def _tool_commands(commands):
    """Add the commands that are not experiments, without --seed or --out: shapes and
    export."""
    sub = commands.add_parser("shapes", help="the shapes of every layer's arrays in the "
                              "course notes' columns and fastnn's rows",
                              description="the shapes of W, b, Z, A, dZ, dW and db of "
                              "every layer, in the course notes' column convention and "
                              "fastnn's row convention, and the parameter counts")
    sub.add_argument("layer_sizes", nargs="+", type=_integer(1, MAX_WIDTH),
                     action=_LayerSizes, help="the widths, input first, such as 2 10 5 1; "
                     f"from 2 to {MAX_LAYERS + 1} of them, each at most {MAX_WIDTH}")
    _count(sub, "--m", MAX_M, 300, "samples (default 300)")
    sub.set_defaults(run=run_shapes)
    sub = commands.add_parser("export", help="write a saved model (.npz) as ONNX",
                              description="write a model saved by MLP.save as an ONNX "
                              "file (needs the onnx extra: pip install 'fastnn[onnx]')")
    sub.add_argument("model", help="the model file (.npz), from MLP.save")
    sub.add_argument("output", help="the ONNX file to write (.onnx)")
    sub.set_defaults(run=run_export)

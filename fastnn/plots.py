"""Figures for the experiments (matplotlib, the optional `plot` extra).

Each function draws one figure from an experiment's results and saves it as a file.
"""
import contextlib
import signal
import threading

import numpy as np

PLOT_HINT = "figures need matplotlib: pip install 'fastnn[plot]' (or pip install matplotlib)"


class PlottingUnavailable(RuntimeError):
    """Raised when matplotlib is not installed.

    Raised by every figure function of this module; the message is PLOT_HINT.
    """


def figure_filetypes():
    """The extensions the figures can be saved as, such as 'png' and 'svg'.

    Imports matplotlib as the figures do (see _pyplot).

    Raises
    ------
    PlottingUnavailable
        When matplotlib cannot be imported.
    """
    _pyplot()
    from matplotlib.backend_bases import FigureCanvasBase
    return FigureCanvasBase.get_supported_filetypes()


def _pyplot():
    """matplotlib.pyplot, on the Agg backend, with every compiled module the figures use
    imported whole: Ctrl-C during the import waits for its end (_ctrl_c_deferred)."""
    with _ctrl_c_deferred():
        try:
            import matplotlib
        except ImportError:
            raise PlottingUnavailable(PLOT_HINT) from None
        matplotlib.use("Agg")
        import matplotlib.backends.backend_agg  # noqa: F401 (savefig's, imported now)
        import matplotlib.pyplot as plt
    return plt


@contextlib.contextmanager
def _ctrl_c_deferred():
    """Hold Ctrl-C (SIGINT) back until the block ends, then deliver it to the handler
    that was there. matplotlib's pybind11 modules (ft2font, _backend_agg) run Python
    code while they initialise; interrupted there, the import fails and the interpreter
    aborts when it exits ("Fatal Python error: PyThreadState_Get")."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is None):  # not ours to set, or restore
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def histograms(rows, path):
    """Activation histograms: one row of per-layer histograms per case, like the book's.

    Parameters
    ----------
    rows : list of tuple of (str, sequence of ActivationStats)
        [(title, activation records), ...], as fastnn.experiments.histograms returns
        the records; the title labels the row.
    path : str or os.PathLike
        Where the figure is saved; the extension picks the format (PNG for .png).

    Returns
    -------
    path : str or os.PathLike
        ``path``, as given.

    Raises
    ------
    PlottingUnavailable
        If matplotlib is not installed.
    """
    plt = _pyplot()
    n_cols = max(len(records) for _, records in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.4 * n_cols, 2.1 * len(rows)),
                             squeeze=False)
    for r, (title, records) in enumerate(rows):
        for c, rec in enumerate(records):
            counts, edges = rec.hist
            ax = axes[r][c]
            ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="C0")
            ax.set_title(f"{c + 1}-layer" if r == 0 else "", fontsize=9)
            ax.tick_params(labelsize=7)
            if c:
                ax.set_yticks([])
            else:
                ax.set_ylabel(title, fontsize=9)
    return _save(fig, path)


def loss_curves(results, path, title, log=False, reference_line=None):
    """One training-loss curve per RunResult, in one plot.

    Parameters
    ----------
    results : list of fastnn.experiments.RunResult
        The runs; each curve is labelled with its run's label.
    path : str or os.PathLike
        File to save the figure to.
    title : str
        Plot title; the x axis reads "iteration" if the title contains that word,
        else "epoch".
    log : bool, default=False
        Whether the loss axis is logarithmic.
    reference_line : tuple of (float, str) or None, default=None
        (value, label): a dashed horizontal line at value.

    Returns
    -------
    path : str or os.PathLike
        The same path.

    Raises
    ------
    PlottingUnavailable
        Without matplotlib.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for result in results:
        ax.plot(np.arange(1, len(result.losses) + 1), result.losses, label=result.label,
                linewidth=1)
    if reference_line is not None:
        ax.axhline(reference_line[0], color="grey", linestyle="--", linewidth=0.8,
                   label=reference_line[1])
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("iteration" if "iteration" in title else "epoch")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def loss_and_boundaries(results, data, path, title):
    """Loss curves beside each network's decision boundary on 2-D data (train points).

    Parameters
    ----------
    results : list of fastnn.experiments.RunResult
        Networks with two input features; one boundary panel each.
    data : tuple
        (X, y, ...): the training points (m, 2) and their labels (m,); further items
        are ignored.
    path : str or os.PathLike
        Output file of the figure.
    title : str
        Title of the loss panel (log scale, per iteration).

    Returns
    -------
    path : str or os.PathLike
        What was passed in as path.

    Raises
    ------
    PlottingUnavailable
        When matplotlib cannot be imported.
    """
    plt = _pyplot()
    X, y = data[0], data[1]
    fig, axes = plt.subplots(1, len(results) + 1, figsize=(4 * (len(results) + 1), 3.8))
    for result in results:
        axes[0].plot(result.losses, label=result.label, linewidth=1)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("cost")
    axes[0].set_title(title)
    axes[0].legend()
    lo, hi = X.min(axis=0) - 0.3, X.max(axis=0) + 0.3
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = np.c_[gx.ravel(), gy.ravel()]
    for ax, result in zip(axes[1:], results):
        labels = result.net.predict(grid).reshape(gx.shape)
        ax.contourf(gx, gy, labels, alpha=0.3, cmap="coolwarm")
        ax.scatter(X[:, 0], X[:, 1], c=y, s=8, cmap="coolwarm")
        ax.set_title(f"{result.label}: train {result.train_score:.0%}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    return _save(fig, path)


def gradient_norms(norms, path):
    """||dW|| per layer on a log scale, one line per network.

    Parameters
    ----------
    norms : dict of str to sequence of GradientNorms
        {"sigmoid": records, "relu": records}, as fastnn.experiments.vanishing
        returns it; "sigmoid" is labelled Xavier, any other name He.
    path : str or os.PathLike
        Destination of the figure.

    Returns
    -------
    path : str or os.PathLike
        The destination, unchanged.

    Raises
    ------
    PlottingUnavailable
        If there is no matplotlib to draw with.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for name, records in norms.items():
        ax.semilogy([r.layer + 1 for r in records], [r.dW_norm for r in records], "o-",
                    label=f"{name} ({'Xavier' if name == 'sigmoid' else 'He'})")
    ax.set_xlabel("layer (1 = first)")
    ax.set_ylabel("||dW||")
    ax.set_title("Gradient norm per layer of a deep network")
    ax.legend()
    return _save(fig, path)


def dead_units(runs, path):
    """Bars of the dead-unit fraction per hidden layer, one colour per learning rate.

    Parameters
    ----------
    runs : list of fastnn.experiments.DeadReluRun
        As fastnn.experiments.dead_relu returns them: at least one, every network
        with the same hidden layers. A run whose units could not be counted
        (records None) has no bars; its legend entry says so, and a diverged run's
        says at which step.
    path : str or os.PathLike
        The file the figure goes to.

    Returns
    -------
    path : str or os.PathLike
        Where the figure was saved (path itself).

    Raises
    ------
    PlottingUnavailable
        In the absence of matplotlib.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4))
    n_hidden = len(runs[0].net.layers) - 1
    layers = np.arange(n_hidden)
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        label = f"lr={run.lr:g}"
        if run.diverged_at is not None:
            label += f", diverged at step {run.diverged_at}"
        if run.records is None:
            label += ", not countable (overflow)"
        fractions = [np.nan] * n_hidden if run.records is None else [
            r.fraction for r in run.records]
        ax.bar(layers + i * width, fractions, width, label=label)
    ax.set_xticks(layers + 0.4 - width / 2)
    ax.set_xticklabels([f"hidden {k + 1}" for k in layers])
    ax.set_ylabel("fraction of dead ReLU units")
    ax.set_ylim(0, 1)
    ax.set_title("Dead ReLU units after training")
    ax.legend()
    return _save(fig, path)

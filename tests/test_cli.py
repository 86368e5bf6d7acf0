"""The `fastnn` command: output, figures, the demo report, bad options and failures."""
import errno
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnn import cli, diagnostics, experiments, plots

COMMANDS = ["histograms", "compare-init", "compare-activations", "vanishing", "dead-relu",
            "demo"]
FIGURE_COMMANDS = COMMANDS[:-1]
EXPERIMENTS = ["histograms", "compare_init_circles", "compare_init_spiral",
               "compare_activations", "vanishing", "dead_relu", "layer_shapes"]


def run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def tables(out):
    """The rows of every table printed in out, each row a list of its cells (cells are
    two or more spaces apart)."""
    found, rows = [], None
    for line in out.splitlines():
        if line and set(line) <= {"-", " "}:
            rows = []
            found.append(rows)
        elif not line.strip():
            rows = None
        elif rows is not None:
            rows.append(re.split(r"\s{2,}", line.strip()))
    return found


def refused(capsys, argv):
    """The one line of standard error with which argv exits with status 2."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    return err


@pytest.fixture
def no_work(monkeypatch):
    """Every experiment fails the test if a command calls it."""
    def forbidden(*args, **kwargs):
        pytest.fail("the command started its work")
    for name in EXPERIMENTS:
        monkeypatch.setattr(experiments, name, forbidden)


def can_create_in(folder):
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@pytest.fixture
def unwritable(tmp_path):
    """A folder in which no file can be created: read-only permissions, or /proc when
    they do not stop this user (root)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    refusing = [f for f in (str(folder), "/proc") if not can_create_in(f)]
    if refusing:
        yield refusing[0]
    folder.chmod(0o755)
    if not refusing:
        pytest.skip("no folder here refuses new files")


# ------------------------------------------------------------------ the work

def test_histograms_prints_each_layer(capsys):
    status, out, _ = run(capsys, "histograms", "--activation", "tanh", "--init", "xavier")
    assert status == 0
    lines = out.splitlines()
    assert "tanh, init xavier" in lines
    rows = [l for l in lines[2:] if l[:1].isdigit()]
    assert [r.split()[0] for r in rows] == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("std", [str(s) for s in cli.STD_RANGE])
def test_histograms_report_the_extreme_stds(capsys, activation, std):
    status, out, _ = run(capsys, "histograms", "--activation", activation, "--init", std,
                         "--samples", "1", "--bins", str(cli.MAX_BINS))
    assert status == 0
    (rows,) = tables(out)
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"]
    assert all(len(mean) <= 10 for _, mean, *_ in rows)  # 1.234e+34, not 35 digits


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("samples", ["1", "3"])
def test_histograms_of_nearly_constant_layers(capsys, activation, samples):
    # a tiny init makes every layer (nearly) constant: its histogram spans its value
    status, out, err = run(capsys, "histograms", "--activation", activation, "--init",
                           "1e-40", "--samples", samples)
    assert status == 0, err
    (rows,) = tables(out)
    assert [row[0] for row in rows] == ["1", "2", "3", "4", "5"]


def test_compare_init_prints_costs_and_accuracies(capsys):
    status, out, err = run(capsys, "compare-init", "--iterations", "3000")
    assert status == 0
    assert "iteration  zeros" in out and "init        train accuracy  test accuracy" in out
    assert "zeros       50%" in out
    assert "he: 3000/3000" in err  # progress goes to standard error


def test_compare_init_prints_the_courses_published_numbers(capsys):
    status, out, _ = run(capsys, "compare-init")
    assert status == 0
    assert out.startswith("the course's circles: scikit-learn's make_circles")
    costs, accuracies = tables(out)
    by_iteration = {int(row[0]): row[1:] for row in costs}
    assert list(by_iteration) == list(range(0, 15_000, 1000))
    assert all(row[1] == "0.6931472" for row in costs)  # zeros: ln 2 throughout
    assert [by_iteration[i][2] for i in (0, 1000, 14000)] == ["0.8830537", "0.6879826",
                                                              "0.0735790"]
    assert by_iteration[0][1] == "1773.5859549"
    assert accuracies == [["zeros", "50%", "50%"], ["random x10", "83%", "86%"],
                          ["he", "99.33%", "96%"]]
    assert "The course printed inf at iteration 0 for random x10" in out
    assert "gives the finite 1773.6." in out


@pytest.mark.parametrize("argv,data", [
    (["--dataset", "fastnn-circles"], "fastnn's circles: fastnn.datasets.make_circles"),
    (["--seed", "1"], "after np.random.seed(2) and 100 test points after "
                      "np.random.seed(3)"),
])
def test_compare_init_says_inf_only_of_the_courses_own_run(capsys, argv, data):
    status, out, _ = run(capsys, "compare-init", "--iterations", "1", *argv)
    assert status == 0 and data in out
    assert "The course printed inf" not in out


def test_compare_init_spiral_prints_one_row_per_iteration_shown(capsys):
    status, out, _ = run(capsys, "compare-init", "--dataset", "spiral",
                         "--iterations", "1")
    assert status == 0
    assert [row[0] for row in tables(out)[0]] == ["1"]


@pytest.mark.parametrize("large_lr", ["1e300", "1e10"])
def test_a_diverging_run_is_a_row_of_the_table(capsys, tmp_path, large_lr):
    pytest.importorskip("matplotlib")
    status, out, err = run(capsys, "dead-relu", "--large-lr", large_lr, "--epochs", "1",
                           "--out", str(tmp_path / "dead.png"))
    assert status == 0 and "error" not in err
    (rows,) = tables(out)
    assert rows[0][0] == "0.01" and rows[0][-1] == "no"
    lr, *dead, diverged = rows[1]
    assert lr == f"{float(large_lr):g}" and re.fullmatch(r"at step \d+", diverged)
    # the dead share of the last finite weights, or "overflow" when they overflow
    assert dead == ["overflow"] * 3 or all(re.fullmatch(r"\d+%", d) for d in dead)
    assert "last finite weights" in out
    assert (tmp_path / "dead.png").exists()


def test_runs_with_the_same_learning_rate_are_both_reported(capsys):
    status, out, _ = run(capsys, "dead-relu", "--lr", "0.5", "--large-lr", "0.5",
                         "--epochs", "1")
    assert status == 0
    assert [row[0] for row in tables(out)[0]] == ["0.5", "0.5"]


def test_vanishing_on_one_hidden_layer(capsys):
    status, out, _ = run(capsys, "vanishing", "--depth", "1")
    assert status == 0
    assert out.count("first layer / last layer = ") == 2


def test_a_last_layer_without_gradient_gives_no_division_error(capsys, monkeypatch):
    norms = experiments.vanishing(depth=2)
    norms["relu"][-1] = diagnostics.GradientNorms(2, "sigmoid", 0.0, 0.0)
    monkeypatch.setattr(experiments, "vanishing", lambda depth, seed: norms)
    status, out, _ = run(capsys, "vanishing", "--depth", "2")
    assert status == 0
    assert "relu: first layer / last layer = inf" in out


def test_shapes_prints_both_conventions_and_the_parameters(capsys):
    status, out, _ = run(capsys, "shapes", "2", "10", "5", "1")
    assert status == 0
    notes, fastnn = tables(out)
    assert notes == [
        ["1", "(10, 2)", "(10, 1)", "(10, 300)", "(10, 300)", "(10, 300)", "(10, 2)",
         "(10, 1)", "30"],
        ["2", "(5, 10)", "(5, 1)", "(5, 300)", "(5, 300)", "(5, 300)", "(5, 10)", "(5, 1)",
         "55"],
        ["3", "(1, 5)", "(1, 1)", "(1, 300)", "(1, 300)", "(1, 300)", "(1, 5)", "(1, 1)", "6"]]
    assert fastnn == [
        ["1", "(10, 2)", "(10,)", "(300, 10)", "(300, 10)", "(300, 10)", "(10, 2)", "(10,)"],
        ["2", "(5, 10)", "(5,)", "(300, 5)", "(300, 5)", "(300, 5)", "(5, 10)", "(5,)"],
        ["3", "(1, 5)", "(1,)", "(300, 1)", "(300, 1)", "(300, 1)", "(1, 5)", "(1,)"]]
    assert "A[0] = X: (2, 300)" in out and "X: (300, 2)" in out
    assert "91 parameters in all" in out


def test_shapes_at_the_limits(capsys):
    sizes = [str(cli.MAX_WIDTH)] * (cli.MAX_LAYERS + 1)
    status, out, _ = run(capsys, "shapes", *sizes, "--m", str(cli.MAX_M))
    assert status == 0
    notes, fastnn = tables(out)
    assert len(notes) == len(fastnn) == cli.MAX_LAYERS
    assert fastnn[-1][3] == f"({cli.MAX_M}, {cli.MAX_WIDTH})"
    assert f"{cli.MAX_LAYERS * (cli.MAX_WIDTH ** 2 + cli.MAX_WIDTH)} parameters" in out


@pytest.mark.parametrize("sizes,message", [
    (["2"], "argument layer_sizes: expected from 2 to 1001 widths, input first, such as "
            "2 10 5 1; got 1"),
    (["3"] * 1002, "argument layer_sizes: expected from 2 to 1001 widths"),
    (["2", "0"], "argument layer_sizes: expected an integer from 1 to 1000000; got '0'"),
    (["2", "-1"], "argument layer_sizes: expected an integer from 1 to 1000000; got '-1'"),
    (["2", "1.5"], "expected an integer from 1 to 1000000; got '1.5'"),
    (["2", "ten"], "expected an integer from 1 to 1000000; got 'ten'"),
    (["2", "1000001"], "expected an integer from 1 to 1000000; got '1000001'"),
    ([], "the following arguments are required: layer_sizes"),
])
def test_bad_sizes_exit_2_with_one_line_before_any_work(capsys, no_work, sizes, message):
    err = refused(capsys, ["shapes", *sizes])
    assert err.startswith("fastnn shapes: error: ") and message in err


def test_shapes_has_help_and_no_seed(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["shapes", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0 and "--m M" in out and "--seed" not in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_seed(capsys, command):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    assert "--seed" in capsys.readouterr().out


def test_python_dash_m_and_the_console_script(tmp_path):
    # Outside the checkout, whose uncompiled fastnn/ would shadow the installed one.
    for argv in ([sys.executable, "-m", "fastnn", "--version"], ["fastnn", "--version"]):
        done = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=tmp_path)
        assert done.stdout.startswith("fastnn ")


def test_figures_are_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [("sigmoid std=1", experiments.histograms("sigmoid", 1.0))]
    paths = [plots.histograms(rows, tmp_path / "h.png"),
             plots.gradient_norms(experiments.vanishing(), tmp_path / "v.png"),
             plots.dead_units(experiments.dead_relu((0.01, 1e300), epochs=2),
                              tmp_path / "d.png")]
    results, data = experiments.compare_init_circles(iterations=50)
    paths.append(plots.loss_and_boundaries(results, data, tmp_path / "c.png", "circles"))
    paths.append(plots.loss_curves(results, tmp_path / "l.png", "loss", log=True))
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_demo_writes_a_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "new" / "report"
    assert cli.main(["demo", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compare_activations.png", "compare_init_circles.png",
                     "compare_init_spiral.png", "dead_relu.png", "histograms.png",
                     "summary.md", "vanishing.png"]
    summary = (out / "summary.md").read_text()
    assert summary.count("![](") == 6 and "| zeros |" in summary
    assert "| he | 0.8831 | 0.06" in summary and "| 99.33% | 96% |" in summary  # the course's


# ------------------------------------------------------------------ bad options
# Each exits with status 2 and one line naming the option, before any work.

BAD_OPTIONS = [
    ("histograms", "--activation", "softmax"), ("histograms", "--init", "glorot"),
    ("histograms", "--init", "0"), ("histograms", "--init", "-1"),
    ("histograms", "--init", "1e-301"), ("histograms", "--init", "1e7"),
    ("histograms", "--init", "nan"), ("histograms", "--init", "inf"),
    ("histograms", "--samples", "0"), ("histograms", "--samples", "100001"),
    ("histograms", "--samples", "1.5"), ("histograms", "--bins", "0"),
    ("histograms", "--bins", "1001"),
    ("compare-init", "--dataset", "mnist"), ("compare-init", "--iterations", "0"),
    ("compare-init", "--iterations", "100001"), ("compare-init", "--iterations", "ten"),
    ("compare-activations", "--epochs", "0"), ("compare-activations", "--epochs", "1e9"),
    ("compare-activations", "--epochs", "100001"),
    ("vanishing", "--depth", "0"), ("vanishing", "--depth", "1001"),
    ("dead-relu", "--lr", "0"), ("dead-relu", "--lr", "-1"), ("dead-relu", "--lr", "inf"),
    ("dead-relu", "--lr", "nan"), ("dead-relu", "--lr", "1e-400"),
    ("dead-relu", "--large-lr", "1e309"), ("dead-relu", "--large-lr", "fast"),
    ("dead-relu", "--epochs", "0"), ("dead-relu", "--epochs", "100001"),
    ("shapes", "--m", "0"), ("shapes", "--m", str(cli.MAX_M + 1)), ("shapes", "--m", "3.0"),
] + [(command, "--seed", seed) for command in COMMANDS
     for seed in ("-1", "1.5", "x", str(experiments.MAX_SEED + 1))]


@pytest.mark.parametrize("command,option,value", BAD_OPTIONS)
def test_bad_options_exit_2_with_one_line_before_any_work(capsys, no_work, tmp_path,
                                                          command, option, value):
    extra = ["--out", str(tmp_path / "report")] if command == "demo" else []
    err = refused(capsys, [command, option, value] + extra)
    assert err.startswith(f"fastnn {command}: error: argument {option}: ")
    assert repr(value) in err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("argv,message", [
    (["histograms", "--init", "glorot"], "expected a std from 1e-300 to 1000000"),
    (["histograms", "--samples", "100001"], "expected an integer from 1 to 100000"),
    (["vanishing", "--depth", "1001"], "expected an integer from 1 to 1000"),
    (["histograms", "--activation", "softmax"], "--activation: invalid choice"),
    (["dead-relu", "--lr", "-1"], "expected a positive number"),
    (["demo"], "the following arguments are required: --out"),
    (["vanishing", "--depth"], "argument --depth: expected one argument"),
    (["vanishing", "--width", "3"], "unrecognized arguments: --width 3"),
    (["nonsense"], "invalid choice"),
    ([], "the following arguments are required: COMMAND"),
])
def test_messages_give_the_limit_or_the_problem(capsys, no_work, argv, message):
    assert message in refused(capsys, argv)


COUNTS = [("histograms", "--samples", cli.MAX_SAMPLES),
          ("histograms", "--bins", cli.MAX_BINS),
          ("compare-init", "--iterations", cli.MAX_STEPS),
          ("compare-activations", "--epochs", cli.MAX_STEPS),
          ("vanishing", "--depth", cli.MAX_DEPTH),
          ("dead-relu", "--epochs", cli.MAX_STEPS),
          ("shapes", "--m", cli.MAX_M)]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_count_out_of_range_is_refused(capsys, no_work, data):
    command, option, high = data.draw(st.sampled_from(COUNTS))
    value = data.draw(st.integers(max_value=0) | st.integers(min_value=high + 1))
    err = refused(capsys, [command, f"{option}={value}"])
    assert f"argument {option}: expected an integer from 1 to {high}" in err


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lr=st.floats(max_value=0) | st.sampled_from([float("inf"), float("nan")]),
       option=st.sampled_from(["--lr", "--large-lr"]))
def test_any_learning_rate_not_positive_and_finite_is_refused(capsys, no_work, lr,
                                                              option):
    err = refused(capsys, ["dead-relu", f"{option}={lr!r}"])  # "-1e+16" alone looks
    # like an option to argparse, which then says that --lr expects an argument
    assert f"argument {option}: expected a positive number" in err


# ------------------------------------------------------------------ --out

def figure_cases(tmp_path, unwritable):
    (tmp_path / "a-file").write_text("")
    return [(str(tmp_path / "missing" / "fig.png"), "does not exist"),
            (os.path.join(unwritable, "fig.png"), "cannot create a file in folder"),
            (str(tmp_path / "fig.xyz"), "has the extension .xyz; matplotlib writes"),
            (str(tmp_path / "fig"), "has no extension"),
            (str(tmp_path), "is a folder"),
            (str(tmp_path / "a-file" / "fig.png"), "is not a folder")]


@pytest.mark.parametrize("command", FIGURE_COMMANDS)
def test_a_bad_figure_path_is_refused_before_any_work(capsys, no_work, tmp_path,
                                                      unwritable, command):
    pytest.importorskip("matplotlib")
    for path, message in figure_cases(tmp_path, unwritable):
        err = refused(capsys, [command, "--out", path])
        assert "argument --out: " in err and message in err, (path, err)


def test_a_bad_report_folder_is_refused_before_any_work(capsys, no_work, tmp_path,
                                                        unwritable):
    pytest.importorskip("matplotlib")
    (tmp_path / "a-file").write_text("")
    for path, message in [(str(tmp_path / "a-file"), "is not a folder"),
                          (str(tmp_path / "a-file" / "report"), "is not a folder"),
                          (os.path.join(unwritable, "report"), "cannot create a file"),
                          ("", "expected a folder")]:
        err = refused(capsys, ["demo", "--out", path])
        assert "argument --out: " in err and message in err, (path, err)


@pytest.mark.parametrize("command", COMMANDS)
def test_without_matplotlib_out_is_refused_with_the_hint(capsys, monkeypatch, no_work,
                                                         tmp_path, command):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    err = refused(capsys, [command, "--out", str(tmp_path / "v.png")])
    assert "argument --out: figures need matplotlib: pip install 'fastnn[plot]'" in err


def test_the_numbers_need_no_matplotlib(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["vanishing"]) == 0


def test_a_bad_out_from_the_installed_command(tmp_path):
    done = subprocess.run(["fastnn", "histograms", "--out", "/nonexistent/dir/fig.png"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("fastnn histograms: error: argument --out: folder "
                           "'/nonexistent/dir' does not exist (see fastnn histograms "
                           "--help)\n")


# ------------------------------------------------------------------ failures in the work

def test_a_figure_that_cannot_be_saved_is_one_line_and_status_1(capsys, monkeypatch,
                                                                tmp_path):
    pytest.importorskip("matplotlib")

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(plots, "histograms", disk_full)
    status, out, err = run(capsys, "histograms", "--out", str(tmp_path / "fig.png"))
    assert status == 1 and "layer" in out  # the numbers were printed
    assert err == ("fastnn histograms: error: OSError: [Errno 28] No space left on "
                   "device\n")


def test_a_failure_message_over_several_lines_is_printed_on_one(capsys, monkeypatch):
    def fails(*args, **kwargs):
        raise ValueError("first line\nsecond line")
    monkeypatch.setattr(experiments, "vanishing", fails)
    assert run(capsys, "vanishing") == (1, "", "fastnn vanishing: error: ValueError: "
                                               "first line second line\n")


def test_ctrl_c_is_one_line_and_status_130(capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(experiments, "vanishing", interrupted)
    assert run(capsys, "vanishing") == (130, "", "fastnn vanishing: interrupted\n")


def test_ctrl_c_while_matplotlib_is_imported_is_one_line_too(capsys, monkeypatch,
                                                             tmp_path):
    def interrupted():
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "_matplotlib_filetypes", interrupted)
    assert run(capsys, "histograms", "--out", str(tmp_path / "fig.png")) == (
        130, "", "fastnn: interrupted\n")


#: A child that runs the command once fastnn.cli is imported, and says so first.
CHILD = """
import sys
import fastnn.cli
print("ready", flush=True)
sys.exit(fastnn.cli.main(sys.argv[1:]))
"""


def interrupted_run(argv, delay):
    """(status, stderr) of a child running main(argv) that gets SIGINT delay seconds
    after it is ready, or None if it finished before."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, *argv], text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=tempfile.gettempdir())  # the installed fastnn, not the
                                                         # checkout python -c would see
    try:
        assert child.stdout.readline() == "ready\n"
        time.sleep(delay)
        if child.poll() is not None:
            return None
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    return child.returncode, err


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
def test_ctrl_c_in_the_first_moments_of_main_is_one_line_and_status_130(tmp_path):
    argv = ["histograms", "--grid", "--out", str(tmp_path / "fig.png")]
    results = [interrupted_run(argv, delay) for delay in (0.005, 0.05, 0.2, 0.4)]
    hits = [result for result in results if result is not None]
    assert len(hits) >= 2, results  # the first moments, parsing and imports, at least
    for status, err in hits:
        assert status == 130 and re.fullmatch(r"fastnn( histograms)?: interrupted\n",
                                               err), (status, err)


#: A child that presses Ctrl-C (raises SIGINT) inside the initialisation of one of
#: matplotlib's compiled modules, at the 20th Python call it makes, then runs main.
INTERRUPTED_INIT = """
import importlib.machinery, signal, sys
import fastnn.cli
target, argv = sys.argv[1], sys.argv[2:]
exec_module = importlib.machinery.ExtensionFileLoader.exec_module

def interrupted_exec(loader, module):
    calls = 0
    def profile(frame, event, arg):
        nonlocal calls
        calls += event == "call"
        if calls == 20:
            sys.setprofile(None)
            signal.raise_signal(signal.SIGINT)
    sys.setprofile(profile if module.__name__ == target else None)
    try:
        return exec_module(loader, module)
    finally:
        sys.setprofile(None)

importlib.machinery.ExtensionFileLoader.exec_module = interrupted_exec
sys.exit(fastnn.cli.main(argv))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals")
@pytest.mark.parametrize("module", ["matplotlib.ft2font", "matplotlib.backends._backend_agg"])
def test_ctrl_c_inside_a_compiled_module_of_matplotlib_is_an_interrupt(tmp_path, module):
    """Interrupted half-way, these pybind11 modules fail their import (ImportError
    from the KeyboardInterrupt) and the interpreter aborts at exit: Ctrl-C waits for
    the import to end (while --out is checked, which imports both)."""
    pytest.importorskip("matplotlib")
    done = subprocess.run([sys.executable, "-c", INTERRUPTED_INIT, module, "vanishing",
                           "--out", str(tmp_path / "fig.png")],
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    assert (done.returncode, done.stderr) == (130, "fastnn: interrupted\n")
    assert not (tmp_path / "fig.png").exists()


def test_ctrl_c_wrapped_by_python_in_an_import_is_still_an_interrupt(monkeypatch, capsys):
    """A KeyboardInterrupt inside __set_name__ (matplotlib's import) reaches main as a
    RuntimeError caused by it: still one line and status 130."""
    class Parser:
        def parse_args(self, argv):
            raise RuntimeError("Error calling __set_name__") from KeyboardInterrupt()
    monkeypatch.setattr(cli, "_parser", Parser)
    assert cli.main(["vanishing"]) == 130
    assert capsys.readouterr().err == "fastnn: interrupted\n"


def test_a_closed_standard_output_ends_quietly(tmp_path):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line, as with `| head -0`
    try:
        done = subprocess.run(["fastnn", "vanishing", "--depth", "1"], stdout=write,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    finally:
        os.close(write)
    assert done.returncode == 1 and done.stderr == ""


@pytest.mark.parametrize("option,value", [("--activation", "relu"), ("--init", "he"),
                                          ("--activation", "sigmoid"), ("--init", "1")])
def test_grid_refuses_an_activation_or_init_it_would_ignore(capsys, no_work, option, value):
    """--grid draws its own seven cases: an --activation or --init beside it, even one
    equal to the default, would be silently ignored, so it is refused."""
    for argv in (["histograms", "--grid", option, value],
                 ["histograms", option, value, "--grid"]):
        err = refused(capsys, argv)
        assert err.startswith(f"fastnn histograms: error: argument --grid: not allowed "
                              f"with {option} ")

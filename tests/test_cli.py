"""The `fastnn` command: output, figures, the demo report and bad options."""
import subprocess
import sys

import pytest

from fastnn import cli, experiments, plots


def run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_histograms_prints_each_layer(capsys):
    status, out, _ = run(capsys, "histograms", "--activation", "tanh", "--init", "xavier")
    assert status == 0
    lines = out.splitlines()
    assert "tanh, init xavier" in lines
    rows = [l for l in lines[2:] if l[:1].isdigit()]
    assert [r.split()[0] for r in rows] == ["1", "2", "3", "4", "5"]


def test_compare_init_prints_costs_and_accuracies(capsys):
    status, out, err = run(capsys, "compare-init", "--iterations", "3000")
    assert status == 0
    assert "iteration  zeros" in out and "init        train accuracy  test accuracy" in out
    assert "zeros       50%" in out
    assert "he: 3000/3000" in err  # progress goes to standard error


@pytest.mark.parametrize("argv,message", [
    (["histograms", "--init", "glorot"], "--init: expected a std such as 1 or 0.01"),
    (["histograms", "--activation", "softmax"], "--activation: invalid choice"),
    (["compare-init", "--iterations", "0"], "expected a positive integer"),
    (["dead-relu", "--lr", "-1"], "expected a positive number"),
    (["demo"], "the following arguments are required: --out"),
    (["nonsense"], "invalid choice"),
])
def test_bad_options_exit_2_with_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["histograms", "compare-init", "compare-activations",
                                     "vanishing", "dead-relu", "demo"])
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


def test_without_matplotlib_out_says_how_to_get_it(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    with pytest.raises(SystemExit) as info:
        cli.main(["vanishing", "--out", str(tmp_path / "v.png")])
    assert "pip install 'fastnn[plot]'" in str(info.value.code)
    assert cli.main(["vanishing"]) == 0  # the numbers need no matplotlib


def test_figures_are_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [("sigmoid std=1", experiments.histograms("sigmoid", 1.0))]
    paths = [plots.histograms(rows, tmp_path / "h.png"),
             plots.gradient_norms(experiments.vanishing(), tmp_path / "v.png"),
             plots.dead_units(experiments.dead_relu(epochs=2), tmp_path / "d.png")]
    results, data = experiments.compare_init_circles(iterations=50)
    paths.append(plots.loss_and_boundaries(results, data, tmp_path / "c.png", "circles"))
    paths.append(plots.loss_curves(results, tmp_path / "l.png", "loss", log=True))
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_demo_writes_a_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    assert cli.main(["demo", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compare_activations.png", "compare_init_circles.png",
                     "compare_init_spiral.png", "dead_relu.png", "histograms.png",
                     "summary.md", "vanishing.png"]
    summary = (out / "summary.md").read_text()
    assert summary.count("![](") == 6 and "| zeros |" in summary

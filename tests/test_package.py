"""Importing fastnn: from an unbuilt source checkout, one clear ImportError."""
import os
import shutil
import subprocess
import sys

import fastnn


def test_an_unbuilt_checkout_says_the_compiled_core_is_not_built_and_how_to_fix_it(tmp_path):
    source = os.path.dirname(fastnn.__file__)
    shutil.copytree(source, tmp_path / "fastnn",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    done = subprocess.run([sys.executable, "-c", "import fastnn"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastnn's compiled core is not built in ")
    assert "pip install ." in last and "pip install -e ." in last
    assert "circular import" not in done.stderr


def test_the_installed_package_imports_from_anywhere(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.MLP)"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "fastnn.model.network.MLP" in done.stdout

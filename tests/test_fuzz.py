"""Run the property-based fuzzing of every entry point in a subprocess, so that a crash
in compiled code is reported as a failure instead of taking pytest down."""
import pathlib
import signal
import subprocess
import sys

import pytest

EXAMPLES = 300


@pytest.mark.slow
def test_every_entry_point_returns_or_raises_a_documented_error():
    script = pathlib.Path(__file__).with_name("fuzz_entry_points.py")
    done = subprocess.run([sys.executable, str(script), str(EXAMPLES)], capture_output=True,
                          text=True, timeout=900)
    if done.returncode < 0:
        cause = f"killed by {signal.Signals(-done.returncode).name}: a crash in compiled code"
    else:
        cause = f"exit status {done.returncode}"
    assert done.returncode == 0, f"fuzzing failed ({cause})\n{done.stdout}\n{done.stderr}"
    assert done.stdout.count("all returned or raised") == 9

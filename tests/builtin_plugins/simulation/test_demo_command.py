"""`pio demo` as a person runs it: it ends by itself once the results are written, and Ctrl-C at
any time stops every process of the cluster."""

import os
import re
import signal
import subprocess

import pytest

from reactorkit.core.testing import pio_command, processes_under

pytestmark = pytest.mark.integration


def demo_env(tmp_path):
    return {**os.environ, "DOT_PIOREACTOR": str(tmp_path / "state"), "REACTORKIT_UI_INSTALL": "0"}


def run_demo(tmp_path):
    return subprocess.run(pio_command("demo", "--hours", "1", "--minutes", "0.5", "--workers", "1"),
                          env=demo_env(tmp_path), capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def test_demo_ends_by_itself_after_its_results_and_exits_0_and_again_in_the_same_state_folder(tmp_path):
    root = tmp_path / "state" / "demo"
    plots = []
    for run in (1, 2):  # the second run finds the first one's calibrations and experiment in the state folder
        result = run_demo(tmp_path)
        assert result.returncode == 0, (run, result.stdout[-2000:] + result.stderr[-2000:])
        lines = result.stdout.splitlines()
        plot_line = next(line for line in lines if line.startswith("Plot:"))
        plots.append(plot_line.split(":", 1)[1].strip())
        assert os.path.exists(plots[-1])
        assert lines[-1] == "Stopped."  # the results come first, then everything stops; nothing waits for Ctrl-C
        assert "Ctrl-C" not in result.stdout.split("Plot:", 1)[1]
        assert processes_under(root) == []
        first_true_od = float(re.search(r"\(true\s+([\d.]+)\)", result.stdout).group(1))
        assert first_true_od < 0.06, (run, first_true_od)  # a fresh culture, not the one the first run grew
    assert plots[0] != plots[1]


def _ctrl_c_as_in_a_terminal():
    """A foreground command in a terminal takes Ctrl-C; a suite started in the background (``./run-tests &``)
    would hand its children SIGINT ignored, so the demo gets the terminal's disposition back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_the_experiment_stops_every_process(tmp_path):
    root = tmp_path / "state" / "demo"
    proc = subprocess.Popen(pio_command("demo", "--hours", "8", "--minutes", "2", "--workers", "2"),
                            env=demo_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    seen = []
    try:
        for line in proc.stdout:  # wait until the profile runs jobs on the workers
            seen.append(line)
            if line.startswith("Profile started"):
                break
        assert seen and seen[-1].startswith("Profile started"), "".join(seen)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends to the foreground process group on Ctrl-C
        rest = proc.stdout.read()
        code = proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 130, rest
    assert "Stopped." in rest and "Interrupted; the cluster was stopped." in rest
    assert processes_under(root) == []  # the demo returns only once every job and program has exited

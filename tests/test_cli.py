"""The console script's `plot` subcommands: one per schedule, documented, with clean errors."""

import subprocess
import sys

import numpy as np
import pytest

import optaxsched as oxs
from optaxsched import cli, plot

# Minimal valid arguments for every schedule the CLI exposes.
VALID = {
    "linear_decay": ["--peak-value", "1e-3", "--total-steps", "100", "--warmup-steps", "10"],
    "wsd": ["--peak-value", "3e-4", "--total-steps", "100", "--decay-shape", "1-sqrt"],
    "wsd_s": ["--peak-value", "1e-3", "--decay-points", "40", "100", "--decay-fraction", "0.2"],
    "rex": ["--peak-value", "1e-3", "--total-steps", "100"],
    "power": ["--peak-value", "0.02", "--batch-size", "32", "--tokens-per-step", "16384",
              "--total-tokens", "1638400"],
    "infinite": ["--peak-value", "1e-3", "--constant-value", "2e-4", "--warmup-steps", "10",
                 "--cooldown-steps", "30"],
    "uba": ["--peak-value", "1e-3", "--total-steps", "100", "--phi", "0.5"],
    "inverse_sqrt": ["--peak-value", "1e-3", "--warmup-steps", "10"],
}


def test_every_schedule_has_a_plot_subcommand():
    assert set(VALID) == set(cli._PLOT_SCHEDULES)


@pytest.mark.parametrize("name", sorted(VALID))
def test_plot_writes_the_schedule_it_was_asked_for(name, tmp_path, capsys):
    out = tmp_path / f"{name}.png"
    code = cli.main(["plot", name, *VALID[name], "-o", str(out), "--print-every", "50"])
    assert code == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    rows = [line.split() for line in printed.splitlines() if line.strip()[:1].isdigit()]
    # The printed table is the schedule itself, built from the same arguments in Python.
    parser = cli.build_parser()
    args = parser.parse_args(["plot", name, *VALID[name], "-o", "x.png"])
    kwargs = {k[len("schedule__"):]: v for k, v in vars(args).items() if k.startswith("schedule__")}
    schedule = getattr(oxs, name)(**kwargs)
    for step, value in rows:
        np.testing.assert_allclose(float(value), float(schedule(int(step))), rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("name", sorted(VALID))
def test_help_documents_every_argument(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["plot", name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    import inspect

    for parameter in inspect.signature(getattr(oxs, name)).parameters:
        assert "--" + parameter.replace("_", "-") in text
    # Every option has a description taken from the docstring, not just its name.
    described = cli._docstring_args(getattr(oxs, name))
    assert set(described) >= set(inspect.signature(getattr(oxs, name)).parameters)


@pytest.mark.parametrize("argv, message", [
    (["plot", "wsd", "--peak-value", "3e-4", "--total-steps", "100", "--decay-shape", "foo"],
     "decay_shape must be one of"),
    (["plot", "wsd", "--peak-value", "-1", "--total-steps", "100"], "peak_value"),
    (["plot", "wsd", "--peak-value", "1e-3", "--total-steps", "0"], "total_steps"),
    (["plot", "linear_decay", "--peak-value", "1e-3", "--total-steps", "10", "--warmup-steps",
      "20"], "warmup_steps"),
    (["plot", "wsd", "--peak-value", "abc", "--total-steps", "100"], "--peak-value"),
    (["plot", "wsd", "--total-steps", "100"], "--peak-value"),
    (["plot", "nosuch", "--peak-value", "1"], "invalid choice"),
    (["plot", "rex", "--peak-value", "1e-3", "--total-steps", "100", "--plot-steps", "-5"],
     "--plot-steps"),
])
def test_bad_arguments_exit_2_naming_the_argument(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "-o", str(tmp_path / "x.png")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_plot_steps_defaults_follow_the_schedule(monkeypatch, tmp_path):
    seen = {}
    real = plot.schedules

    def spy(named, total_steps, **kwargs):
        seen["steps"] = total_steps
        return real(named, 2, **kwargs)

    monkeypatch.setattr(plot, "schedules", spy)
    for name, expected in (("wsd_s", 100), ("power", 100), ("inverse_sqrt", 10_000),
                           ("rex", 100)):
        argv = ["plot", name, *VALID[name], "-o", str(tmp_path / "x.png")]
        cli._run_plot(cli.build_parser().parse_args(argv))
        assert seen["steps"] == expected, name


def test_console_script_entry_point(tmp_path):
    out = tmp_path / "wsd.png"
    done = subprocess.run(
        [sys.executable, "-m", "optaxsched.cli", "plot", "wsd", "--peak-value", "3e-4",
         "--total-steps", "1000", "-o", str(out)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert out.exists()

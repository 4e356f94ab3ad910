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
    # It printed the table's header and no rows.
    (["plot", "rex", "--peak-value", "1e-3", "--total-steps", "100", "--print-every", "-5"],
     "--print-every must be a non-negative integer"),
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


# ------------------------------------------------------------------------------------------------
# Outputs into directories that do not exist yet, missing matplotlib, loader errors (issue 12):
# the script creates parent directories as a user expects, and every user error is exit code 2
# with one line on stderr, never a traceback.
# ------------------------------------------------------------------------------------------------


def _norms_file(tmp_path):
    path = tmp_path / "norms.csv"
    path.write_text("grad_norm_l2\n" + "\n".join(str(3.0 - 0.05 * i) for i in range(40)))
    return path


def _run_file(tmp_path):
    path = tmp_path / "run.csv"
    rows = [f"{k},{1e-3 * (1 - k / 200):.6g},{2.0 + 3.0 * (k + 1) ** -0.5:.6g}" for k in range(200)]
    path.write_text("step,lr,loss\n" + "\n".join(rows))
    return path


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    assert "error:" in lines[-1]
    return lines[-1]


@pytest.mark.parametrize("what", ["plot -o", "refine -o", "refine --plot", "fit -o",
                                  "predict -o", "predict --csv"])
def test_outputs_into_missing_directories_are_created(what, tmp_path, capsys):
    target = tmp_path / "new" / "nested"
    law = tmp_path / "law.json"

    oxs.AnnealingLaw(L0=2.0, A=0.5, alpha=0.5, C=0.1).save(str(law))
    argv = {
        "plot -o": ["plot", "wsd", *VALID["wsd"], "-o", str(target / "wsd.png")],
        "refine -o": ["refine", str(_norms_file(tmp_path)), "-o", str(target / "s.csv")],
        "refine --plot": ["refine", str(_norms_file(tmp_path)), "-o", str(tmp_path / "s.npy"),
                          "--plot", str(target / "r.png")],
        "fit -o": ["forecast", "fit", str(_run_file(tmp_path)), "--starts", "1", "-o",
                   str(target / "law.json")],
        "predict -o": ["forecast", "predict", str(law), "--schedule", "cosine", "--peak-value",
                       "1e-3", "--total-steps", "50", "-o", str(target / "f.png")],
        "predict --csv": ["forecast", "predict", str(law), "--schedule", "cosine",
                          "--peak-value", "1e-3", "--total-steps", "50", "--csv",
                          str(target / "f.csv")],
    }[what]
    assert cli.main(argv) == 0
    written = list(target.iterdir())
    assert len(written) == 1 and written[0].stat().st_size > 0, written


def test_output_under_a_file_is_named_not_a_traceback(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as info:
        cli.main(["refine", str(_norms_file(tmp_path)), "-o", str(blocker / "sub" / "s.csv")])
    assert info.value.code == 2
    line = _error_line(capsys)
    assert "-o/--output" in line and "cannot create the directory" in line


@pytest.fixture
def no_matplotlib(monkeypatch):
    """Makes ``import matplotlib`` fail, as in a plain install without the plot extra."""
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError


@pytest.mark.parametrize("what", ["plot", "refine --plot", "predict -o"])
def test_missing_matplotlib_says_how_to_install_the_extra(what, no_matplotlib, tmp_path, capsys):
    law = tmp_path / "law.json"

    oxs.AnnealingLaw(L0=2.0, A=0.5, alpha=0.5, C=0.1).save(str(law))
    argv = {
        "plot": ["plot", "wsd", *VALID["wsd"], "-o", str(tmp_path / "out" / "wsd.png")],
        "refine --plot": ["refine", str(_norms_file(tmp_path)), "-o", str(tmp_path / "s.csv"),
                          "--plot", str(tmp_path / "r.png")],
        "predict -o": ["forecast", "predict", str(law), "--schedule", "cosine", "--peak-value",
                       "1e-3", "--total-steps", "50", "-o", str(tmp_path / "f.png")],
    }[what]
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    line = _error_line(capsys)
    assert "pip install 'optaxsched[plot]'" in line
    # Failing fast: nothing was written and no directory was created for the picture.
    assert not (tmp_path / "out").exists() and not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("kind", ["npz as npy", "empty npy", "truncated npy", "step 10**12",
                                  "step beyond float"])
def test_loader_errors_are_one_line_exit_2(kind, tmp_path, capsys):
    import io

    path = tmp_path / ("norms.npy" if "npy" in kind else "metrics.jsonl")
    if kind == "npz as npy":
        np.savez(str(tmp_path / "a.npz"), x=np.ones(3))
        path.write_bytes((tmp_path / "a.npz").read_bytes())
    elif kind == "empty npy":
        path.write_bytes(b"")
    elif kind == "truncated npy":
        buffer = io.BytesIO()
        np.save(buffer, np.ones(100))
        path.write_bytes(buffer.getvalue()[:100])
    elif kind == "step 10**12":
        path.write_text('{"step": 0, "grad_norm_l2": 1}\n{"step": 1000000000000, '
                        '"grad_norm_l2": 1}\n')
    else:
        path.write_text('{"step": 0, "grad_norm_l2": 1}\n{"step": 1e999, "grad_norm_l2": 1}\n')
    with pytest.raises(SystemExit) as info:
        cli.main(["refine", str(path), "-o", str(tmp_path / "s.csv")])
    assert info.value.code == 2
    line = _error_line(capsys)
    assert path.name in line and "load_grad_norms" in line


def test_console_script_user_error_is_one_line_without_traceback(tmp_path):
    """The installed entry point itself (a subprocess), for one loader error."""
    bad = tmp_path / "norms.npy"
    bad.write_bytes(b"")
    done = subprocess.run(
        [sys.executable, "-m", "optaxsched.cli", "refine", str(bad), "-o",
         str(tmp_path / "missing" / "s.csv")], capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "norms.npy" in lines[0] and "empty" in lines[0], done.stderr


def test_an_image_format_matplotlib_cannot_write_is_named_before_any_work(tmp_path, capsys):
    """It was matplotlib's error, after the work, naming neither the option nor the path."""
    norms = tmp_path / "norms.csv"
    norms.write_text("grad_norm_l2\n" + "\n".join(str(1.0 + 0.1 * i) for i in range(30)))
    law = tmp_path / "law.json"
    oxs.AnnealingLaw(L0=2.5, A=0.6, alpha=0.5, C=0.4).save(law)
    bad = str(tmp_path / "figure.bogus")
    for argv, option in [
            (["plot", "wsd", "--peak-value", "1e-3", "--total-steps", "100", "-o", bad],
             "-o/--output"),
            (["refine", str(norms), "--kind", "sgd", "-o", str(tmp_path / "s.csv"), "--plot",
              bad], "--plot"),
            (["forecast", "predict", str(law), "--schedule", "cosine", "--peak-value", "1e-3",
              "--total-steps", "100", "-o", bad], "-o/--output")]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert f"{option} must be an image file ending in one of" in err and ".png" in err, err
        assert repr(bad) in err and err.count("\n") == 1
        assert not (tmp_path / "s.csv").exists()  # refused before the schedule was written


@pytest.mark.parametrize("law", [dict(L0=2.8, A=0.4, alpha=1e300, C=0.3),
                                 dict(L0=1e308, A=1e308, alpha=0.5, C=1e308)])
def test_forecast_of_a_law_that_overflows_is_one_error_line_and_no_table(tmp_path, capsys, law):
    """Such laws pass their checks, but their forecasts printed tables of inf (and plan a
    'best WSD' among equal infinities) with exit code 0; the observed run's prediction is also
    made before the table's first line."""
    path = tmp_path / "law.json"
    oxs.AnnealingLaw(**law).save(path)
    for argv in (["forecast", "predict", str(path), "--observed", str(_run_file(tmp_path))],
                 ["forecast", "plan", str(path), "--peak-value", "1e-3", "--total-steps", "100",
                  "--fractions", "0.2"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        captured = capsys.readouterr()
        assert captured.out == "", captured.out
        assert captured.err.count("\n") == 1, captured.err
        assert f"alpha={law['alpha']!r}, C={law['C']!r}) must give a finite loss" in captured.err

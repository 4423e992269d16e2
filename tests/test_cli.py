"""The command line as a user meets it: bad input refused before any work, hints, Ctrl-C, help."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from rdbench.cli import build_parser, main

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _usage_error(capsys, argv) -> str:
    """Run `rdbench ARGV`, require exit 2, return stderr."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("option, value", [
    ("--max-images", "0"), ("--max-images", "-2"), ("--workers", "0"), ("--workers", "-1"), ("--timeout", "0"),
    ("--quality", "abc"), ("--quality", "30,abc"),
])
def test_run_refuses_bad_numbers_naming_the_option(capsys, tmp_path, small_dataset, option, value):
    out = tmp_path / "out"
    err = _usage_error(capsys, ["run", "--dataset", str(small_dataset), "--codec", "jpeg", "--out", str(out),
                                option, value])
    assert f"argument {option}" in err and repr(value.split(",")[-1]) in err
    assert not out.exists()  # nothing was run, nothing written


@pytest.mark.parametrize("option", ["--jobs", "--workers", "--max-images"])
def test_ablate_refuses_non_positive_counts(capsys, tmp_path, option):
    err = _usage_error(capsys, ["ablate", "config.toml", "--out", str(tmp_path / "o"), option, "0"])
    assert f"argument {option}" in err


def _run_rc(argv, capsys) -> tuple[int, str]:
    rc = main(argv)
    return rc, capsys.readouterr().err


def test_misspelled_codec_gets_a_suggestion(capsys, tmp_path, small_dataset):
    rc, err = _run_rc(["run", "--dataset", str(small_dataset), "--codec", "jpg", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "unknown codec 'jpg'; did you mean jpeg?" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("codec", ["jpeg2000", "opj", "jpeg", "avif"])
def test_out_of_range_quality_stops_before_work(capsys, tmp_path, small_dataset, codec):
    if codec in ("opj", "avif"):
        from rdbench.codecs import load
        from rdbench.codecs.base import CodecUnavailable

        try:
            load(codec)
        except CodecUnavailable as exc:
            pytest.skip(str(exc))
    out = tmp_path / "o"
    rc, err = _run_rc(["run", "--dataset", str(small_dataset), "--codec", codec, "--quality", "30,100.5",
                       "--out", str(out), "--no-progress"], capsys)
    assert rc == 2 and "100.5 outside" in err, err
    assert not (out / "results.csv").exists()


def test_jpeg2000_target_psnr_range_is_a_meaningful_one(capsys, tmp_path, small_dataset):
    rc, err = _run_rc(["run", "--dataset", str(small_dataset), "--codec", "jpeg2000", "--quality", "100",
                       "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "target PSNR (dB) 100 outside 10..60" in err


def test_missing_local_dataset_folder_says_folder_not_found(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("RDBENCH_KODAK", str(tmp_path / "nonexistent"))
    rc, err = _run_rc(["run", "--codec", "jpeg", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and f"RDBENCH_KODAK={tmp_path / 'nonexistent'}: folder not found" in err
    assert "kodim01.png: missing" not in err


BLOCK_TORCH = "import sys; sys.modules['torch'] = None; from rdbench.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.parametrize("argv", [
    ["train", "--data", ".", "--out", "m.pt", "--lambda", "0.01"],
    ["export", "m.pt", "--rate", "1", "--out", "x.pt"],
    ["ablate", "config.toml", "--out", "o"],
])
def test_torch_commands_without_torch_give_the_install_hint(tmp_path, argv):
    done = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2, done.stderr
    assert "pip install 'rdbench[learned]'" in done.stderr and "Traceback" not in done.stderr


def test_ctrl_c_says_what_was_stored_and_logs_the_run(tmp_path, small_dataset):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "rdbench", "run", "--dataset", str(small_dataset), "--codec", "jpeg2000,webp,jpeg",
            "--out", str(out), "--workers", "2", "--no-progress", "--no-report"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            cwd=REPO_ROOT)
    results = out / "results.csv"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if results.is_file() and len(results.read_text().splitlines()) > 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "results.csv" in err and "Run the same command again" in err
    entry = json.loads((out / "runs.jsonl").read_text().splitlines()[-1])
    assert entry["interrupted"] is True
    stored = len(results.read_text().splitlines()) - 1
    assert entry["ok"] + entry["failed"] == stored and stored < entry["planned"]
    assert f"{entry['ok']} measured" in err


def _subparser(name):
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return action.choices[name]


@pytest.mark.parametrize("command, option", [
    ("train", "--steps"), ("train", "--crop"), ("train", "--lr"),
    ("bdrate", "--anchor"), ("bdrate", "--metric"), ("bdrate", "--method"), ("report", "--anchor"),
    ("ablate", "--jobs"), ("plot", "--format"),
])
def test_help_shows_defaults(command, option):
    help_text = _subparser(command).format_help()
    action = next(a for a in _subparser(command)._actions if option in a.option_strings)
    assert action.default is not None
    line = help_text[help_text.index(f"\n  {option} "):][1:]  # its entry in the options list, not the usage
    line = line[: line.index("\n  -") if "\n  -" in line else len(line)]
    assert "default" in line and str(action.default) in " ".join(line.split()), line


def test_run_timeout_help_names_each_codecs_default():
    # no single default: 600 s, or a codec spec's own `timeout` (an hour for VTM and HM)
    help_text = " ".join(_subparser("run").format_help().split())
    line = help_text[help_text.index("--timeout S per-call"):]
    assert line.index("(default: the codec spec's `timeout` where it sets one, as vtm and hm do, else 600)") < 120


def test_required_options_are_marked_and_train_names_its_rate_options():
    train = _subparser("train").format_help()
    assert "checkpoint path (required)" in " ".join(train.split())
    assert "required: --lambda and/or --lambda-index" in train
    assert _subparser("export").format_help().count("(required)") == 2


def test_each_option_name_means_one_thing():
    """--quality is a codec quality, --metric a result column; train says --lambda-index and --loss;
    --context-size / --mixtures instead of --k / --K (still parsed, hidden)."""
    train = _subparser("train")
    shown = {s for a in train._actions if a.help != "==SUPPRESS==" for s in a.option_strings}
    assert {"--lambda-index", "--loss", "--context-size", "--mixtures"} <= shown
    assert not {"--quality", "--metric", "--k", "--K"} & shown
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--k", "3", "--K", "2", "--quality", "2",
                                      "--metric", "ms-ssim"])
    assert (args.k_deprecated, args.K_deprecated, args.lambda_index_deprecated, args.loss_deprecated) == \
        (3, 2, ["2"], "ms-ssim")


def test_plot_format_is_validated(capsys, tmp_path):
    err = _usage_error(capsys, ["plot", str(tmp_path), "--out", str(tmp_path / "p"), "--format", "png,gif"])
    assert "argument --format: gif: expected png, svg and/or pdf" in err


def test_report_reference_adds_to_the_defaults(tmp_path, small_dataset, capsys):
    out = tmp_path / "r"
    assert main(["run", "--dataset", str(small_dataset), "--codec", "jpeg", "--quality", "20,40,60,80",
                 "--out", str(out), "--no-progress", "--no-report"]) == 0
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--reference", "vtm", "--anchor", "jpeg"]) == 0
    curves = (tmp_path / "rep" / "curves.csv").read_text()
    assert "VTM" in curves and "BPG" in curves and "mbt2018" in curves.lower()


def test_bdrate_terminal_view_is_one_line_per_codec(tmp_path, small_dataset, capsys):
    out = tmp_path / "r"
    assert main(["run", "--dataset", str(small_dataset), "--codec", "jpeg,webp,jpeg:subsampling=444", "--quality",
                 "20,40,60,80",
                 "--out", str(out), "--no-progress", "--no-report"]) == 0
    capsys.readouterr()
    assert main(["bdrate", str(out), "--anchor", "jpeg"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert "BD versus jpeg" in lines[0] and "method pchip" in lines[0]
    body = lines[1:]
    assert [line.split()[0] for line in body] == ["jpeg:subsampling=444", "webp"] or \
        sorted(line.split()[0] for line in body) == ["jpeg:subsampling=444", "webp"]
    assert all("BD-rate" in line and "%" in line and len(line) < 100 for line in body), body


@pytest.mark.slow
def test_codecs_lists_learned_as_needing_an_option():
    done = subprocess.run([sys.executable, "-m", "rdbench", "codecs"], capture_output=True, text=True, timeout=120,
                          cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("learned "))
    assert "needs an option" in line and "unavailable" not in line and "checkpoint=FILE" in line
    assert "Warning" not in done.stderr, done.stderr  # CompressAI's FutureWarnings are silenced
    zoo = done.stdout[done.stdout.index("\nmbt2018 "):].split("\nmbt2018-mean")[0]
    assert "weights: " in zoo and " of 8 cached in " in zoo  # not simply "available"


def test_train_without_rate_points_is_refused_before_loading_torch(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import sys; from rdbench.cli import main; rc = main(sys.argv[1:]); "
                           "sys.exit(rc + 10 * ('torch' in sys.modules))", "train", "--data", str(tmp_path),
                           "--out", str(tmp_path / "m.pt")], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT)
    assert done.returncode == 2, done.stderr  # 12 would mean torch was imported first
    assert "give --lambda or --lambda-index" in done.stderr


@pytest.mark.slow
def test_zoo_codec_without_reachable_weights_stops_before_work(tmp_path, small_dataset):
    pytest.importorskip("compressai")
    out = tmp_path / "out"
    env = {**os.environ, "RDBENCH_WEIGHTS": str(tmp_path / "empty-cache"),
           "RDBENCH_WEIGHTS_URL": "http://127.0.0.1:9/weights"}  # nothing listens on port 9: refused at once
    done = subprocess.run([sys.executable, "-m", "rdbench", "run", "--dataset", str(small_dataset), "--codec",
                           "mbt2018", "--quality", "1", "--out", str(out), "--no-progress"], capture_output=True,
                          text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert done.returncode == 2, done.stderr
    assert "mbt2018" in done.stderr and "cannot download" in done.stderr and "RDBENCH_WEIGHTS_URL" in done.stderr
    assert not (out / "results.csv").exists()

"""Every bad option of every command: exit code 2 and one line "Error: ..." on stderr.

The table below is checked through click's test runner; none of these invocations
gets as far as importing TensorFlow. `--debug` shows the traceback instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from musicgen.cli import main

ROOT = Path(__file__).resolve().parents[1]

# {tmp} is the test's folder: it holds bad.json, list.json, broken.json, notes.txt,
# afile (a regular file), empty/ (an empty folder) and ckpt/ (an empty folder).
BAD = [
    "train --units 0",
    "train --units abc",
    "train --cell rnn",
    "train --layers 0",
    "train --layers 17",
    "train --embedding-dim 0",
    "train --dropout 1",
    "train --dropout -0.1",
    "train --seq-len 1",
    "train --batch-size 0",
    "train --epochs 0",
    "train --steps-per-epoch -1",
    "train --learning-rate 0",
    "train --clip-norm -1",
    "train --val-fraction 1",
    "train --transpose 25",
    "train --patience -1",
    "train --seed abc",
    "train --device tpu",
    "train --encoding midi",
    "train --unitz 3",
    "train --config {tmp}/missing.json",
    "train --config {tmp}/bad.json",
    "train --config {tmp}/list.json",
    "train --config {tmp}/broken.json",
    "train {tmp}/nonexistent",
    "train {tmp}/empty --out {tmp}/afile/run",
    "generate --temperature 0",
    "generate --temperature -1",
    "generate --top-p 2",
    "generate --top-p 0",
    "generate --top-k -1",
    "generate --num 0",
    "generate --num 5000",
    "generate --bars 0",
    "generate --seconds 0",
    "generate --tempo 5",
    "generate --program 128",
    "generate --seed -1",
    "generate --primer {tmp}/nonexistent.mid",
    "generate --primer {tmp}/empty",
    "generate --checkpoint {tmp}/nonexistent",
    "generate --out {tmp}/afile/out",
    "prepare {tmp}/nonexistent",
    "prepare {tmp}/empty",
    "prepare {tmp}/notes.txt",
    "prepare --workers 0",
    "prepare --steps-per-quarter 0",
    "prepare --steps-per-quarter 49",
    "prepare --val-fraction 1",
    "prepare --encoding midi",
    "prepare --seed x",
    "stats {tmp}/nonexistent",
    "stats {tmp}/empty --reference {tmp}/nonexistent",
    "evaluate --checkpoint {tmp}/nonexistent",
    "evaluate --checkpoint {tmp}/ckpt --batch-size 0",
    "evaluate {tmp}/nonexistent --checkpoint {tmp}/ckpt",
    "info {tmp}/nonexistent",
    "info {tmp}/afile",
    "nosuchcommand",
    "--nosuchoption info",
]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "bad.json").write_text(json.dumps({"units": 8, "unknown_key": 1}))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "notes.txt").write_text("not music")
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "ckpt").mkdir()
    return tmp_path


@pytest.mark.parametrize("command", BAD)
def test_bad_invocation_is_one_line_and_exit_2(command, folder):
    args = command.format(tmp=folder).split()
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (command, result.output, result.exception)
    assert result.stderr.startswith("Error"), (command, result.stderr)
    assert result.stderr.count("\n") == 1, (command, result.stderr)
    assert "Traceback" not in result.output and "Usage:" not in result.output
    assert result.stdout == ""


def test_config_error_names_the_key(folder):
    result = CliRunner().invoke(main, ["train", "--config", str(folder / "bad.json")])
    assert "unknown_key" in result.stderr


def test_debug_shows_the_traceback():
    command = [sys.executable, "-m", "musicgen", "--debug", "info", "/nonexistent/ckpt"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "Traceback (most recent call last)" in done.stderr
    assert "UsageError: checkpoint folder not found: /nonexistent/ckpt" in done.stderr
    plain = subprocess.run(command[:3] + command[4:], cwd=ROOT, capture_output=True, text=True)
    assert plain.returncode == 2
    assert plain.stderr == "Error: checkpoint folder not found: /nonexistent/ckpt\n"


def test_bare_command_still_shows_the_help():
    result = CliRunner().invoke(main, [])
    assert result.output.startswith("Usage:") and "Error" not in result.output

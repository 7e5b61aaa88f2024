"""`musicgen prepare`: exit codes, the human report, --json, and no TensorFlow import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from musicgen.cli import main
from tests.music import Track, write_test_midi
from tests.test_dataset import drums_midi, good_midi

SUMMARY_KEYS = {
    "data_dir", "files_ok", "pieces", "files_skipped", "notes", "tokens", "seconds", "hours",
    "dropped", "cached", "parsed", "encoding", "split",
}  # fmt: skip


def run(*args: str):
    return CliRunner().invoke(main, ["prepare", *args])


def test_missing_or_empty_folder_is_a_usage_error(tmp_path):
    result = run(str(tmp_path / "missing"))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"Error: no such file or folder: {tmp_path / 'missing'}"
    (tmp_path / "empty").mkdir()
    result = run(str(tmp_path / "empty"))
    assert result.exit_code == 2 and "no music files" in result.stderr
    assert result.stdout == ""


def test_only_bad_files_is_a_failure_naming_them(tmp_path):
    (tmp_path / "empty.mid").write_bytes(b"")
    drums_midi(tmp_path / "drums.mid")
    result = run(str(tmp_path), "--encoding", "remi")  # one merged pitched part: no drums
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "drums.mid: drums only" in result.stderr and "empty.mid" in result.stderr
    result = run(str(tmp_path))  # steps (the default) keeps a drum groove as a drum part
    assert result.exit_code == 0 and "1 file" in result.output, result.output


def test_json_prints_only_the_summary(tmp_path):
    good_midi(tmp_path / "a.mid", 1)
    drum_track = Track([(36, q, 0.5, 100) for q in range(4)], channel=9)
    write_test_midi(tmp_path / "b.mid", [Track([(60, 0, 1, 80)]), drum_track])
    drums_midi(tmp_path / "drums.mid")
    result = run(str(tmp_path), "--json", "--encoding", "performance", "--workers", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary) == SUMMARY_KEYS
    assert summary["files_ok"] == 2 and summary["encoding"] == "performance"
    assert summary["files_skipped"] == [{"path": "drums.mid", "reason": "drums only"}]
    assert summary["split"] == {"train": 1, "validation": 1}
    assert summary["dropped"]["drum_notes"] == 4 and summary["parsed"] == 3
    again = json.loads(run(str(tmp_path), "--json", "--encoding", "performance").stdout)
    assert (again["parsed"], again["cached"]) == (0, 3)


def test_human_report_lists_skips_with_a_cap(tmp_path):
    good_midi(tmp_path / "good.mid", 1)
    for i in range(23):
        (tmp_path / f"bad{i:02d}.mid").write_text(f"not midi {i}")
    result = run(str(tmp_path), "--cache-dir", str(tmp_path / ".cache"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "1 file(s) used, 23 skipped" in out
    assert "12 notes" in out and "hours of music" in out
    assert "  bad00.mid: unreadable: not a readable MIDI file" in out
    assert "bad19.mid" in out and "bad20.mid" not in out
    assert out.rstrip().endswith("... and 3 more")
    assert run(str(tmp_path), "--quiet").stdout == ""


def test_data_dir_defaults_to_midi_corpus(tmp_path, monkeypatch):
    good_midi(tmp_path / "midi_corpus" / "x.mid", 1)
    monkeypatch.chdir(tmp_path)
    result = run("--json", "--steps-per-quarter", "8")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data_dir"] == "midi_corpus"


def test_prepare_does_not_import_tensorflow(tmp_path):
    good_midi(tmp_path / "a.mid", 1)
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from musicgen.cli import main\n"
        f"r = CliRunner().invoke(main, ['prepare', {str(tmp_path)!r}, '--quiet'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_tunes_of_one_abc_file_are_pieces_of_their_own(tmp_path):
    from tests.test_midi_io import TUNES

    (tmp_path / "tunes.abc").write_text(TUNES)
    good_midi(tmp_path / "one.mid")
    result = run(str(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files_ok"] == 2 and summary["pieces"] == 3
    assert summary["dropped"]["empty_pieces"] == 1
    assert "3 pieces, " in run(str(tmp_path)).stdout


def test_the_part_encodings_report_their_drums_as_kept(tmp_path):
    """steps and tracks train on the drum part: prepare counts its notes and reports
    no dropped drum notes; remi without --include-drums leaves them out and says so."""
    drum_track = Track([(36, q, 0.5, 100) for q in range(4)], channel=9)
    write_test_midi(tmp_path / "b.mid", [Track([(60, 0, 1, 80), (62, 1, 1, 80)]), drum_track])
    for encoding in ("steps", "tracks"):
        result = run(str(tmp_path), "--encoding", encoding, "--cache-dir", str(tmp_path / "c"))
        assert result.exit_code == 0, result.output
        assert "6 notes (drums included)" in result.stdout  # 2 pitched + 4 drum notes
        assert "drum notes" not in result.stdout and "Dropped" not in result.stdout
    result = run(str(tmp_path), "--encoding", "remi", "--cache-dir", str(tmp_path / "c"))
    assert "2 notes (drums left out)" in result.stdout and "drum notes: 4" in result.stdout

"""Rendering to audio: a band piece to WAV with the pip-installed synthesizer, x real time.

The piece is what `musicgen generate --checkpoint checkpoints/band --bars 32 --num 1
--instruments guitar,bass,drums,piano` writes (seed 0; the same notes through the
API), or `--midi FILE`. Timed: `render.synthesize` (the synthesizer alone, the MIDI
bytes in memory, the soundfont read each call) and `render.render_wav` (reading the
MIDI file, synthesis, writing the 16-bit WAV), best of `--repeats` after one untimed
call, and the whole command `python -m musicgen render` in a fresh process (start-up
and imports included); each as wall and CPU seconds (the run with the least CPU time).
x real time = seconds of audio written / seconds taken. Target (issue 24): at least 20x
on the 2-core CPU, on `render_wav`: on wall time, or on CPU time when the load average
says other work shares the CPUs (the synthesizer is single-threaded).

It also looks at the audio, as an ear would: the peak and the clipped samples, and
whether the drums are heard where the MIDI file has them: the share of drum notes with
a peak of the onset envelope (spectral flux, 10.7 ms hop) within 30 ms, and the
envelope on the beats against halfway between them. From the repository root:

    python benchmarks/bench_render.py [--quick] [--bars 32] [--midi FILE] [--json FILE]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from fixtures import BAND, command_seconds
from run_all import Report

import musicgen
from musicgen import render

INSTRUMENTS = "guitar,bass,drums,piano"
TARGET = 20.0  # x real time (issue 24)
HOP, WINDOW = 512, 1024  # onset envelope, samples at 48 kHz


def band_piece(path: Path, bars: int) -> Path:
    """The first piece `generate --checkpoint checkpoints/band --bars BARS --num 1
    --instruments guitar,bass,drums,piano` writes, written to `path`."""
    (piece,) = musicgen.load(BAND).generate(num=1, bars=bars, instruments=INSTRUMENTS, seed=0)
    piece.write(str(path))
    return path


def best_seconds(run: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(wall s, CPU s) of the run with the least CPU time, after one untimed run."""
    run()  # untimed: page the soundfont and the synthesizer in
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        best = min(best, (time.process_time() - cpu, time.perf_counter() - wall))
    return best[1], best[0]


def command_cpu_seconds(args: list[str], repeats: int) -> tuple[float, float]:
    """(wall s, CPU s) of the fresh `python -m musicgen ARGS` with the least CPU time."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = command_seconds(args, 1)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        best = min(best, (cpu, wall))
    return best[1], best[0]


def onset_envelope(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(times s, spectral flux): the rise of log magnitude summed over frequency."""
    mono = samples.mean(axis=1)
    frames = np.lib.stride_tricks.sliding_window_view(mono, WINDOW)[::HOP] * np.hanning(WINDOW)
    magnitude = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.maximum(np.diff(magnitude, axis=0), 0).sum(axis=1)
    times = (np.arange(1, len(frames)) * HOP + WINDOW / 2) / rate
    return times, flux


def listen(report: Report, midi: Path, samples: np.ndarray, rate: int) -> None:
    """The audio's level and whether its drum hits are where the MIDI file puts them."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(midi))
    drums = np.array([n.start for i in pm.instruments if i.is_drum for n in i.notes])
    beats = pm.get_beats()
    times, flux = onset_envelope(samples, rate)
    peaks = (flux[1:-1] >= flux[:-2]) & (flux[1:-1] >= flux[2:])
    peaks &= flux[1:-1] > np.percentile(flux, 75)
    peak_times = times[1:-1][peaks]

    def near(targets: np.ndarray) -> np.ndarray:
        index = np.clip(np.searchsorted(times, targets), 2, len(flux) - 3)
        return np.array([flux[i - 2 : i + 3].max() for i in index])

    heard = [np.abs(peak_times - t).min() < 0.03 for t in drums] if len(drums) else [0.0]
    table = report.table("The audio, looked at", ["figure", "value"])
    table.add("peak level (full scale = 1)", float(np.abs(samples).max()))
    table.add("clipped samples", int((np.abs(samples) >= 32767 / 32768).sum()))
    table.add("drum notes in the MIDI file", len(drums))
    table.add("drum notes with an onset peak within 30 ms", f"{100 * np.mean(heard):.0f}%")
    table.add("beats with a drum note within 30 ms",
              f"{100 * np.mean([np.abs(drums - b).min() < 0.03 for b in beats]):.0f}%")  # fmt: skip
    between = beats[:-1] + np.diff(beats) / 2
    table.add("onset envelope, median on beats / halfway between",
              float(np.median(near(beats)) / np.median(near(between))))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=32, help="length of the band piece")
    parser.add_argument("--midi", type=Path, help="render this MIDI file instead")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (best)")
    parser.add_argument("--quick", action="store_true", help="4 bars, 1 run")
    parser.add_argument("--json", help="also write the report here (for run_all.py)")
    args = parser.parse_args()
    if args.quick:
        args.bars, args.repeats = 4, 1
    report = Report("Rendering to audio: a band piece to WAV")
    with tempfile.TemporaryDirectory() as tmp:
        midi = args.midi or band_piece(Path(tmp) / "band.mid", args.bars)
        wav = Path(tmp) / "band.wav"
        data = midi.read_bytes()
        samples, rate = render.synthesize(data)
        seconds = len(samples) / rate
        report.notes += [
            f"piece: {midi.name if args.midi else f'checkpoints/band, --bars {args.bars} --num 1 --instruments {INSTRUMENTS}, seed 0'}; "
            f"{seconds:.1f} s of audio ({seconds - render.TAIL_SECONDS:.1f} s of music + "
            f"{render.TAIL_SECONDS:g} s tail), 16-bit stereo at {rate} Hz",
            f"synthesizer: builtin (RustySynth, midirenderer wheel), soundfont "
            f"{render.find_soundfont().name} (pretty_midi's)",
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
            f"best of {args.repeats} after one untimed call; command: best of "
            f"{args.repeats} fresh processes",
        ]  # fmt: skip
        columns = ["what", "wall s", "CPU s", "x real time (wall)", "x real time (CPU)"]
        table = report.table("Seconds and speed", columns)
        rows = {
            "render.synthesize (in memory)": best_seconds(
                lambda: render.synthesize(data), args.repeats
            ),
            "render.render_wav (MIDI file -> WAV file)": best_seconds(
                lambda: render.render_wav(midi, wav), args.repeats
            ),
            "`python -m musicgen render FILE.mid` (fresh process)": command_cpu_seconds(
                ["render", str(midi), "--out", tmp, "--force"], args.repeats
            ),
        }
        for what, (wall, cpu) in rows.items():
            table.add(what, wall, cpu, seconds / wall, seconds / cpu)
        wall, cpu = rows["render.render_wav (MIDI file -> WAV file)"]
        busy = os.getloadavg()[0] > (os.cpu_count() or 1)
        speed = seconds / (cpu if busy else wall)
        report.target(f"render a {args.bars}-bar band piece to WAV, x real time"
                      f"{' (CPU time: the machine was busy)' if busy else ''}",
                      f"{speed:.1f}x", f">= {TARGET:g}x", speed >= TARGET)  # fmt: skip
        listen(report, midi, samples, rate)
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()

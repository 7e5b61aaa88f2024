"""`musicgen live` in real time with `--port none` (no sound card needed): the figures
of issue 24's live targets, on the band model (checkpoints/band, or the untrained
stand-in when it is absent, as the other benchmarks do).

- first note: seconds from `live_music.play` being called (checkpoint loaded, header
  sampled, first bar sampled on the worker) to the first note-on leaving the port,
  and from the player starting to it (target <= 1 s);
- timing: every note-on's send time minus its scheduled time, continue mode at 120
  bpm over `--bars` (64) bars: median, 99th percentile, worst (target: median and
  99th percentile within 5 ms); the same for accompany over `--accompany-bars` bars,
  the mode that samples most per bar;
- answer: a scripted player (an in-process input port fed in real time) plays
  `--phrases` phrases of 8 eighth notes; the reply's first note after the silence
  rule fired, in beats (target: within one beat);
- the floor: `RealClock.sleep_until` alone (no music, no worker thread), 1,000 waits
  5 ms apart: how late this machine, as busy as it is, wakes a process on time;
- stop: a continue session stopped (its stop event set) in the middle of a bar:
  note-ons minus note-offs per key on the port afterwards (target 0).

The port is an in-process output that keeps (perf_counter, message) of every send.
Run from the repository root:

    python benchmarks/bench_live.py [--bars 64] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from fixtures import band_checkpoint
from run_all import Report

from musicgen.config import SampleConfig
from musicgen.live import ALL_NOTES_OFF, RealClock
from musicgen.live_music import LiveRequest, play

TEMPO = 120.0
BEAT = 60.0 / TEMPO
TARGET_FIRST_NOTE = 1.0  # seconds
TARGET_TIMING_MS = 5.0
TARGET_REPLY_BEATS = 1.0


class TimedPort:
    """An output port that keeps (perf_counter seconds, message) of every send."""

    name = "timed (none)"

    def __init__(self) -> None:
        self.sent: list[tuple[float, tuple[int, ...]]] = []

    def send(self, message) -> None:
        self.sent.append((time.perf_counter(), tuple(message)))

    def close(self) -> None:
        pass

    def first_note_on(self) -> float | None:
        return next((t for t, m in self.sent if m[0] & 0xF0 == 0x90 and m[2] > 0), None)

    def left_sounding(self) -> int:
        count: Counter = Counter()
        for _, m in self.sent:
            if m[0] & 0xF0 == 0x90 and m[2] > 0:
                count[(m[0] & 15, m[1])] += 1
            elif m[0] & 0xF0 in (0x80, 0x90):
                count[(m[0] & 15, m[1])] -= 1
        return sum(v for v in count.values() if v > 0)


class ScriptedPlayer:
    """An input port fed in real time: phrases of 8 eighth notes, each followed by
    `gap` seconds in which the reply plays."""

    name = "scripted player"

    def __init__(self, start: float, phrases: int, gap: float):
        self.pending = []
        t = start
        for k in range(phrases):
            for i in range(8):
                pitch = 60 + (i * 2 + k) % 12
                self.pending.append((t, (0x90, pitch, 90)))
                self.pending.append((t + BEAT / 2 * 0.8, (0x80, pitch, 0)))
                t += BEAT / 2
            t += gap
        self.end = t

    def receive(self):
        now = time.perf_counter()
        ready = [m for t, m in self.pending if t <= now]
        self.pending = [(t, m) for t, m in self.pending if t > now]
        return ready

    def close(self) -> None:
        pass


def clock_floor(waits: int = 1000, spacing: float = 0.005) -> list[float]:
    """Seconds late of `waits` RealClock.sleep_until calls, `spacing` apart."""
    clock, late = RealClock(), []
    when = clock.now() + spacing
    for _ in range(waits):
        clock.sleep_until(when)
        late.append(clock.now() - when)
        when += spacing
    return late


def lateness_row(table, what: str, lateness: list[float], bars: int) -> tuple[float, float]:
    ms = np.array(lateness) * 1e3
    median, p99 = float(np.median(ms)), float(np.percentile(ms, 99))
    table.add(what, bars, len(ms), median, p99, float(ms.max()))
    return median, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=64)
    parser.add_argument("--accompany-bars", type=int, default=16)
    parser.add_argument("--phrases", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="4 bars, 2 phrases (smoke run)")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()
    if args.quick:
        args.bars, args.accompany_bars, args.phrases = 4, 2, 2
    report = Report("Live: musicgen live --port none in real time")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, label = band_checkpoint(Path(tmp))
        report.notes.append(f"checkpoint: {label}; {TEMPO:g} bpm, temperature 0.8, seed 0")
        timing = report.table(
            "note-on send time minus schedule (ms)",
            ["mode", "bars", "notes", "median", "99th pct", "worst"],
        )
        record = Path(tmp) / "take.mid"
        lateness_row(timing, "the clock alone (floor)", clock_floor(), 0)

        def session(mode: str, bars: int | None, **options):
            port = TimedPort()
            request = LiveRequest(mode=mode, bars=bars, tempo=TEMPO, sample=SampleConfig(0.8))
            called = time.perf_counter()
            result = play(checkpoint, request, port="none", record=record, out=port, **options)
            return port, result, called

        # 1-2. continue: first note and timing over --bars bars
        port, result, called = session("continue", args.bars)
        first_called = port.first_note_on() - called
        median, p99 = lateness_row(timing, "continue", result.lateness, args.bars)
        firsts = report.table("first note (s)", ["from", "seconds"])
        firsts.add("play() called (load, header, first bar)", first_called)
        firsts.add("player started (first bar sampled)", result.first_note_after)
        report.target("first note after play() is called", f"{first_called:.3f} s",
                      f"<= {TARGET_FIRST_NOTE:g} s", first_called <= TARGET_FIRST_NOTE)  # fmt: skip
        report.target("note timing at 120 bpm, median / 99th pct (continue)",
                      f"{median:.2f} / {p99:.2f} ms", f"<= {TARGET_TIMING_MS:g} ms",
                      abs(median) <= TARGET_TIMING_MS and p99 <= TARGET_TIMING_MS)  # fmt: skip

        # accompany: the same figures where each bar samples about twice the tokens
        inport = ScriptedPlayer(time.perf_counter() + 1.0, 64, 0.0)
        _, result, _ = session("accompany", args.accompany_bars, inport=inport)
        lateness_row(timing, "accompany (a player playing)", result.lateness, args.accompany_bars)

        # 3. answer: the reply's start after the silence rule fires
        silence, gap = 1.0, 1.0 + BEAT + 2 * 4 * BEAT  # the silence, a beat, two bars
        inport = ScriptedPlayer(time.perf_counter() + 1.5, args.phrases, gap)
        stop = threading.Event()
        threading.Timer(inport.end - time.perf_counter() + 1.0, stop.set).start()
        _, result, _ = session("answer", None, inport=inport, silence=silence, stop=stop)
        beats = [d / BEAT for d in result.reply_delays]
        replies = report.table(
            "answer: reply start after the silence rule fired",
            ["phrases", "replies", "median (beats)", "worst (beats)", "worst (s)"],
        )
        replies.add(
            args.phrases, len(beats), float(np.median(beats)), max(beats), max(beats) * BEAT
        )
        report.target("answer: reply start after the silence, worst", f"{max(beats):.2f} beats",
                      f"<= {TARGET_REPLY_BEATS:g} beat", max(beats) <= TARGET_REPLY_BEATS)  # fmt: skip

        # 4. stop in the middle of a bar
        stop = threading.Event()
        threading.Timer(3.3 * 4 * BEAT, stop.set).start()  # in bar 4, notes sounding
        port, result, _ = session("continue", None, stop=stop)
        offs = sum(1 for _, m in port.sent if m[0] & 0xF0 == 0xB0 and m[1] == ALL_NOTES_OFF)
        stops = report.table("stop mid-bar", ["notes played", "left sounding", "CC 123 sent"])
        stops.add(result.notes_played, port.left_sounding(), offs)
        report.target("notes left sounding after stop", str(port.left_sounding()), "0",
                      port.left_sounding() == 0)  # fmt: skip
    report.print()
    report.save(args.json)


if __name__ == "__main__":
    main()

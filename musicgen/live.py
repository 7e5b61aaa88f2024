"""`musicgen live`: play music into a MIDI port in time, the network stepped ahead on a
worker thread.

The pieces and how they relate:

- a `Music` (live_music.py: continue, answer, accompany) writes bars of `LiveNote`s
  (times in quarter notes) when asked; it runs on the `_Worker` thread, so that the
  network's steps never hold up a note;
- a transport says where the music is: `InternalTransport` (its own --tempo) or
  `MidiClockTransport` (a DAW's MIDI clock: 24 pulses per quarter, start, stop,
  continue, song position pointer), mapping quarters <-> seconds of a `Clock`;
- the `Player` (main thread) asks the music for the next bar a little before it is due
  (`Music.ahead` quarters), puts its note-ons and note-offs on a heap, and sends each at
  its time to the output port; in answer mode it waits for the player's silence
  (`LiveOptions.silence` seconds) and then plays the reply from the next beat;
- a `Recorder` keeps what was played and what the player played (`--record`).

Ports are anything with `send(bytes)` (output) or `receive() -> [bytes]` (input, never
blocking) and `close()` (midi_ports.py opens the real ones); clocks anything with
`now()` (seconds) and `sleep_until(seconds)`, so tests run everything against fake
ports and a fake clock. All Notes Off (a note-off for every sounding note, then CC 123
on every channel used) goes out when the transport stops, when the music ends, on
Ctrl-C and on any error.
"""

from __future__ import annotations

import heapq
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from musicgen.score import DRUM_PROGRAM, Note, Part, Score

PULSES_PER_QUARTER = 24  # MIDI clock
NOTE_ON, NOTE_OFF, CONTROL, PROGRAM_CHANGE = 0x90, 0x80, 0xB0, 0xC0
CLOCK, START, CONTINUE, STOP, SONG_POSITION = 0xF8, 0xFA, 0xFB, 0xFC, 0xF2
ALL_NOTES_OFF = 123  # controller number
DRUM_CHANNEL = 9  # General MIDI channel 10
POLL_SECONDS = 0.001  # how often the player reads its input port
IDLE_SECONDS = 0.02  # the longest the player sleeps with nothing to read
SWITCH_INTERVAL = 0.0005  # seconds: the main thread gets the GIL back quickly while playing
SPIN_SECONDS = 0.0015  # the last stretch before a note is waited out by spinning
SPECULATE = 0.5  # answer: the reply is sampled after this share of the silence
WORKER_NICENESS = 5  # the worker thread's niceness above the player's (Linux)


# ----------------------------------------------------------------------------- notes


@dataclass(frozen=True)
class LiveNote:
    """One note to play or played: times in quarter notes, MIDI channel 0..15."""

    channel: int
    pitch: int
    start: float
    end: float
    velocity: int

    def moved(self, by: float) -> LiveNote:
        """The note `by` quarters later."""
        return LiveNote(self.channel, self.pitch, self.start + by, self.end + by, self.velocity)


@dataclass
class LiveBar:
    """One bar of music: where it starts and how long it is (quarters), its notes."""

    start: float
    length: float
    notes: list[LiveNote] = field(default_factory=list)

    def moved_to(self, start: float) -> LiveBar:
        """The same bar starting at `start`."""
        by = start - self.start
        return LiveBar(start, self.length, [n.moved(by) for n in self.notes])


class Music(Protocol):
    """What a mode plays (live_music.py). `mode` is "bars" (continue, accompany: bar
    after bar) or "answer" (a reply after each phrase); `channels` maps each output
    channel to its General MIDI program (DRUM_PROGRAM on channel 9); `ahead`: how many
    quarters before a bar starts it is asked for."""

    mode: str
    channels: dict[int, int]
    ahead: float
    player_program: int

    def bar(self, start: float, heard: list[LiveNote]) -> LiveBar | None:
        """The next bar, placed at `start`; `heard`: the player's notes so far. None:
        the music has ended."""

    def reply(self, phrase: list[LiveNote]) -> Iterator[LiveBar]:
        """Answer mode: the reply to `phrase` (its first note at 0), bar by bar from 0."""


# ----------------------------------------------------------------------------- ports, clocks


class OutputPort(Protocol):
    def send(self, message: Sequence[int]) -> None: ...

    def close(self) -> None: ...


class InputPort(Protocol):
    def receive(self) -> list[tuple[int, ...]]: ...

    def close(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, when: float) -> None: ...


class RealClock:
    """time.perf_counter seconds; sleeps most of a wait, then spins (yielding the GIL)
    through the last SPIN_SECONDS, so a note goes out within a fraction of a ms."""

    def now(self) -> float:
        return time.perf_counter()

    def sleep_until(self, when: float) -> None:
        while True:
            left = when - time.perf_counter()
            if left <= 0:
                return
            time.sleep(left - SPIN_SECONDS if left > 2 * SPIN_SECONDS else 0)


class NullPort:
    """`--port none`: an output port that sends nothing (the recorder keeps the notes)."""

    name = "none"

    def send(self, message: Sequence[int]) -> None:
        pass

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- transports


class InternalTransport:
    """The music's own tempo: quarter q plays at origin + q * 60 / tempo seconds."""

    def __init__(self, tempo: float):
        self.tempo = float(tempo)
        self.origin: float | None = None
        self.epoch = 0  # changes when the position jumps (never here)

    @property
    def playing(self) -> bool:
        return self.origin is not None

    def start(self, at: float) -> None:
        self.origin = at

    def feed(self, message: Sequence[int], at: float) -> None:
        """MIDI clock messages mean nothing to the internal clock."""

    def position(self, at: float) -> float:
        """Quarters played by `at` (seconds); 0 before the start."""
        if self.origin is None:
            return 0.0
        return max(0.0, (at - self.origin) * self.tempo / 60.0)

    def seconds_at(self, quarters: float) -> float:
        assert self.origin is not None
        return self.origin + quarters * 60.0 / self.tempo


class MidiClockTransport:
    """A DAW's MIDI clock. Start plays from 0, Stop stops, Continue plays on from where
    it stopped (or from the last Song Position Pointer, in 16ths); position = pulses / 24,
    and between pulses the time of a quarter is extrapolated from the last pulse with
    the measured pulse interval (`tempo` bpm until one is measured)."""

    SMOOTHING = 0.2  # weight of the newest pulse interval in the running estimate

    def __init__(self, tempo: float = 120.0):
        self.running = False
        self.pulse = -1  # pulses counted since the position `resume` (-1: none yet)
        self.last: float | None = None  # seconds of the last pulse
        self.resume = 0  # pulse position that Continue plays from
        self.interval = 60.0 / (tempo * PULSES_PER_QUARTER)
        self.epoch = 0  # bumped on Start, Continue and Song Position Pointer

    @property
    def playing(self) -> bool:
        """Running and the first pulse since Start/Continue has come."""
        return self.running and self.last is not None

    @property
    def tempo(self) -> float:
        return 60.0 / (self.interval * PULSES_PER_QUARTER)

    def start(self, at: float) -> None:
        """The DAW starts the transport; nothing to do here."""

    def feed(self, message: Sequence[int], at: float) -> None:
        """Read one message received at `at` seconds."""
        status = message[0]
        if status == CLOCK and self.running:
            self._pulse(at)
        elif status in (START, CONTINUE):
            self.resume = 0 if status == START else self.resume
            self.running, self.pulse, self.last = True, self.resume - 1, None
            self.epoch += 1
        elif status == STOP and self.running:
            self.running = False
            self.resume = max(self.pulse + 1, self.resume)
        elif status == SONG_POSITION and len(message) >= 3:
            self.resume = (message[1] | message[2] << 7) * 6  # 16ths -> pulses
            self.pulse, self.last = self.resume - 1, None
            self.epoch += 1

    def _pulse(self, at: float) -> None:
        if self.last is not None and 0 < at - self.last < 1.0:
            self.interval += self.SMOOTHING * (at - self.last - self.interval)
        self.pulse += 1
        self.last = at

    def position(self, at: float) -> float:
        """Quarters at `at`: the last pulse plus the time since it, at most one pulse."""
        if self.last is None:
            return self.resume / PULSES_PER_QUARTER
        since = min(max(at - self.last, 0.0) / self.interval, 1.0) if self.running else 0.0
        return (self.pulse + since) / PULSES_PER_QUARTER

    def seconds_at(self, quarters: float) -> float:
        assert self.last is not None
        return self.last + (quarters * PULSES_PER_QUARTER - self.pulse) * self.interval


# ----------------------------------------------------------------------------- recording


class Recorder:
    """What was played (per output channel) and what the player played, in quarters."""

    def __init__(self) -> None:
        self.played: list[LiveNote] = []
        self.heard: list[LiveNote] = []

    def score(self, channels: dict[int, int], player_program: int, tempo: float) -> Score:
        """A Score with one part per output channel (its program) and a "Player" part."""
        parts = []
        for channel in sorted({n.channel for n in self.played}):
            notes = [n for n in self.played if n.channel == channel]
            program = DRUM_PROGRAM if channel == DRUM_CHANNEL else channels.get(channel, 0)
            parts.append(Part(program, _score_notes(notes), ""))
        if self.heard:
            parts.append(Part(player_program, _score_notes(self.heard), "Player"))
        end = max((n.end for n in [*self.played, *self.heard]), default=1.0)
        return Score(parts=parts, tempos=[(0.0, float(tempo))], end=end)


def _score_notes(notes: Iterable[LiveNote]) -> list[Note]:
    """Live notes -> score notes, sorted, a same-pitch overlap cut where the next begins."""
    out: list[Note] = []
    last: dict[int, int] = {}
    for n in sorted(notes, key=lambda n: (n.start, n.pitch)):
        if n.end - n.start <= 1e-6:
            continue
        j = last.get(n.pitch)
        if j is not None and out[j].end > n.start:
            prev = out[j]
            if n.start - prev.start <= 1e-6:
                continue
            out[j] = Note(prev.pitch, prev.start, n.start, prev.velocity)
        last[n.pitch] = len(out)
        out.append(Note(n.pitch, max(n.start, 0.0), n.end, max(1, min(127, n.velocity))))
    return sorted(out, key=lambda n: (n.start, n.pitch))


# ----------------------------------------------------------------------------- worker


_END = object()  # a job's last result


class _Worker:
    """One thread that runs jobs (callables giving bars) and hands back each bar as it
    comes: results are (tag, LiveBar | _END | the exception the job raised)."""

    def __init__(self) -> None:
        self.jobs: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.cancelled: set = set()
        self.thread = threading.Thread(target=self._run, name="musicgen-live", daemon=True)
        self.thread.start()

    def submit(self, tag: Any, job: Callable[[], Iterable[LiveBar | None]]) -> None:
        self.jobs.put((tag, job))

    def _run(self) -> None:
        _lower_priority()
        while (item := self.jobs.get()) is not None:
            tag, job = item
            try:
                for bar in job():
                    if tag in self.cancelled:
                        break
                    self.results.put((tag, bar))
                self.results.put((tag, _END))
            except BaseException as exc:  # handed to the player, which re-raises it
                self.results.put((tag, exc))

    def cancel(self, tag: Any) -> None:
        """Stop the job `tag` after the bar it is writing (its results are stale)."""
        self.cancelled.add(tag)

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=5.0)


def _lower_priority() -> None:
    """Give the calling thread WORKER_NICENESS more niceness than the process (Linux
    sets it per thread), so that on a busy machine the player's thread, which sends
    the notes, wins the CPU over the worker; nothing where the system says no."""
    get_id = getattr(threading, "get_native_id", None)
    if get_id is None or not hasattr(os, "setpriority"):
        return
    try:
        tid = get_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICENESS)
    except OSError:
        pass


# ----------------------------------------------------------------------------- player


@dataclass
class LiveOptions:
    """How to play: `bars` (stop after this many bars; None: until stopped), `silence`
    (answer mode: seconds without a note that end a phrase), `lead` (seconds from the
    first bar being ready to its start, internal clock), `quarters_per_bar` (answer
    mode's bar, for --bars), `poll` (seconds between looks at the input port)."""

    bars: int | None = None
    silence: float = 1.0
    lead: float = 0.05
    quarters_per_bar: float = 4.0
    poll: float = POLL_SECONDS  # seconds between looks at the input port


@dataclass
class LiveReport:
    """What a session did: counts, and each note-on's lateness (seconds sent minus
    scheduled; the benchmark's figures), the first note's time after `run` began, the
    answer mode's reply starts after the silence rule fired (seconds), and the notes
    still sounding when it ended (0 unless a port failed)."""

    notes_played: int = 0
    bars_played: int = 0
    lateness: list[float] = field(default_factory=list)
    first_note_after: float | None = None
    reply_delays: list[float] = field(default_factory=list)
    left_sounding: int = 0
    interrupted: bool = False  # ended by Ctrl-C


@dataclass
class _Reply:
    """Answer mode's reply in progress: the worker job's tag (None: no reply), how many
    heard notes its phrase covers, when the silence rule fired (seconds), where it
    starts and where its next bar goes (quarters), bars not yet placed."""

    tag: int | None = None
    heard: int = 0
    fired: float | None = None
    start: float | None = None
    next: float = 0.0
    bars: list[LiveBar] = field(default_factory=list)
    finished: bool = False

    @property
    def idle(self) -> bool:
        return self.tag is None


@dataclass(order=True)
class _Event:
    quarters: float
    order: int  # note-offs (0) before note-ons (1) at the same time
    seq: int
    note: LiveNote = field(compare=False)


class Player:
    """Plays a `Music` into an output port in time; see the module docstring.

    out: the output port; clock: a `Clock`; transport: Internal- or MidiClockTransport;
    inport: where the player's notes and the DAW's clock come from (None: nothing
    heard); stop: set it (another thread, a signal) to end the session cleanly."""

    def __init__(
        self,
        music: Music,
        out: OutputPort,
        clock: Clock,
        transport: InternalTransport | MidiClockTransport,
        *,
        inport: InputPort | None = None,
        options: LiveOptions | None = None,
        recorder: Recorder | None = None,
        stop: threading.Event | None = None,
    ):
        self.music, self.out, self.clock, self.transport = music, out, clock, transport
        self.inport, self.options = inport, options or LiveOptions()
        self.recorder = recorder if recorder is not None else Recorder()
        self.stop = stop or threading.Event()
        self.report = LiveReport()
        self.heap: list[_Event] = []
        self.seq = 0
        self.sounding: dict[tuple[int, int], LiveNote] = {}  # (channel, pitch) -> note
        self.held: dict[tuple[int, int], tuple[float, int]] = {}  # the player's: start, velocity
        self.last_heard = -math.inf  # seconds of the player's last note event
        self.epoch = transport.epoch
        self.played_until = 0.0  # the latest position played (quarters)
        self.started: float | None = None

    # ------------------------------------------------------------------ session

    def run(self) -> LiveReport:
        """Play until the music ends, `--bars` is reached or `stop` is set; All Notes
        Off on the way out, whatever ends it (an exception is re-raised after)."""
        self.started = self.clock.now()
        worker = _Worker()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        try:
            self._send_programs()
            if self.music.mode == "answer":
                self._answer_loop(worker)
            else:
                self._bars_loop(worker)
        finally:
            sys.setswitchinterval(interval)
            self.all_notes_off()
            self.report.left_sounding = len(self.sounding)
            worker.close()
        return self.report

    def _send_programs(self) -> None:
        for channel, program in sorted(self.music.channels.items()):
            if channel != DRUM_CHANNEL and 0 <= program <= 127:
                self.out.send((PROGRAM_CHANGE | channel, program))

    # ------------------------------------------------------------------ continue, accompany

    def _bars_loop(self, worker: _Worker) -> None:
        """Ask for bar after bar (one job each), place each where the last one ended,
        play them; stop after `bars` bars or when the music ends."""
        placed, asked, arrived, ended = 0.0, 0, 0, False
        limit = self.options.bars
        while not self.stop.is_set():
            now = self._listen()
            pos = self.transport.position(now)
            placed = self._replan(pos, placed)
            more = not ended and (limit is None or asked < limit)
            if more and asked == arrived and pos >= placed - self.music.ahead:
                heard = list(self.recorder.heard)
                worker.submit(asked, lambda at=placed, h=heard: [self.music.bar(at, h)])
                asked += 1
            for bar in self._results(worker, block=self._bar_due(asked > arrived, pos, placed)):
                arrived += 1
                if bar is None:
                    ended = True
                    continue
                self._place(bar.moved_to(placed))
                placed += bar.length
                self._start_if_needed()
            self._play_due()
            if self._finished(ended or (limit is not None and arrived >= limit), asked, arrived):
                self.report.bars_played = arrived - ended
                return
            self._sleep(self._bars_wake(more and asked == arrived, asked > arrived, placed))

    def _bars_wake(self, may_ask: bool, waiting: bool, placed: float) -> float | None:
        """Quarters at which the bars loop must look again: when the next bar is to
        be asked for, or when the bar asked for is due."""
        if waiting:
            return placed
        return placed - self.music.ahead if may_ask else None

    def _bar_due(self, waiting: bool, pos: float, placed: float) -> bool:
        """Whether the bar asked for is due now (wait for it: its notes are late by
        the wait), or is the first one the internal clock waits for."""
        if not waiting:
            return False
        if isinstance(self.transport, InternalTransport) and not self.transport.playing:
            return True
        return self.transport.playing and pos >= placed

    def _start_if_needed(self) -> None:
        """The internal clock starts `lead` seconds after the first bar is ready."""
        if isinstance(self.transport, InternalTransport) and not self.transport.playing:
            self.transport.start(self.clock.now() + self.options.lead)

    def _finished(self, last_bar_in: bool, asked: int, arrived: int) -> bool:
        return last_bar_in and asked == arrived and not self.heap

    def _results(self, worker: _Worker, block: bool) -> Iterator[LiveBar | None]:
        """The bars the worker has finished; with `block`, wait for at least one."""
        got = False
        while True:
            try:
                tag, item = worker.results.get(block=block and not got, timeout=0.1)
            except queue.Empty:
                if block and not got and not self.stop.is_set():
                    continue
                return
            if isinstance(item, BaseException):
                raise item
            if item is _END:
                continue
            got = True
            yield item

    # ------------------------------------------------------------------ answer

    def _answer_loop(self, worker: _Worker) -> None:
        """Listen. Once the player has been quiet for SPECULATE x `silence` seconds
        after a phrase, the reply is sampled on the worker (and dropped if the player
        plays on); when the silence is complete, it plays from the next beat. Stop
        after `bars` bars of time."""
        self.transport.start(self.clock.now())
        reply = _Reply()
        phrase_from, tag = 0, 0  # where the next phrase starts in recorder.heard
        limit = self.options.bars
        while not self.stop.is_set():
            now = self._listen()
            pos = self.transport.position(now)
            if limit is not None and pos >= limit * self.options.quarters_per_bar:
                return
            heard, silence = self.recorder.heard, self.options.silence
            quiet_for = -1.0 if self.held else now - self.last_heard
            if reply.idle and not self.heap and len(heard) > phrase_from and self.transport.playing:
                if quiet_for >= SPECULATE * silence:
                    tag += 1
                    reply = _Reply(tag=tag, heard=len(heard))
                    phrase = heard[phrase_from:]
                    first = min(n.start for n in phrase)
                    notes = [n.moved(-first) for n in phrase]
                    worker.submit(tag, lambda notes=notes: self.music.reply(notes))
            if not reply.idle and reply.fired is None:
                if len(heard) != reply.heard or self.held:  # the player played on
                    worker.cancel(reply.tag)
                    reply = _Reply()
                elif quiet_for >= silence:
                    reply.fired, phrase_from = now, reply.heard
            self._take_reply(worker, reply, pos)
            self._play_due()
            busy = not reply.idle and reply.fired is not None
            self._sleep(reply.next if busy else None, self._fire_at(reply))

    def _fire_at(self, reply: _Reply) -> float | None:
        """Seconds at which the silence rule will fire or a reply be asked for."""
        if self.held or self.last_heard == -math.inf:
            return None
        if reply.idle:
            return self.last_heard + SPECULATE * self.options.silence
        return self.last_heard + self.options.silence if reply.fired is None else None

    def _take_reply(self, worker: _Worker, reply: _Reply, pos: float) -> None:
        """Collect the reply's bars; once the rule has fired, place them from the next
        beat (waiting for a bar that is due)."""
        due = reply.fired is not None and not reply.finished
        due = due and (reply.start is None or pos >= reply.next)
        for tag, item in self._reply_results(worker, block=due):
            if tag != reply.tag:
                continue  # a reply dropped because the player played on
            if item is _END:
                reply.finished = True
            else:
                reply.bars.append(item)
        if reply.fired is None or not reply.bars:
            if reply.fired is not None and reply.finished:
                reply.tag = None  # done (or nothing to say): the next phrase may come
            return
        if reply.start is None:  # the first bar: start on the next beat
            reply.start = math.ceil(self.transport.position(self.clock.now()) - 1e-9)
            reply.next = reply.start
            self.report.reply_delays.append(self.transport.seconds_at(reply.start) - reply.fired)
        for bar in reply.bars:
            self._place(bar.moved_to(reply.start + bar.start))
            reply.next = max(reply.next, reply.start + bar.start + bar.length)
        reply.bars = []
        if reply.finished:
            reply.tag = None

    def _reply_results(self, worker: _Worker, block: bool) -> Iterator[tuple[Any, Any]]:
        while True:
            try:
                tag, item = worker.results.get(block=block, timeout=0.1)
            except queue.Empty:
                if block and not self.stop.is_set():
                    continue
                return
            if isinstance(item, BaseException):
                raise item
            block = False
            yield tag, item

    # ------------------------------------------------------------------ input

    def _listen(self) -> float:
        """Read the input port: clock messages go to the transport (a stop silences
        everything), note messages are the player's; returns the clock's now."""
        now = self.clock.now()
        if self.inport is None:
            return now
        for message in self.inport.receive():
            self._read(message, now)
        return now

    def _read(self, message: Sequence[int], now: float) -> None:
        status = message[0] & 0xF0 if message[0] < 0xF0 else message[0]
        if message[0] >= 0xF0:
            was_running = getattr(self.transport, "running", True)
            self.transport.feed(message, now)
            if was_running and not getattr(self.transport, "running", True):
                self.all_notes_off()
            return
        channel = message[0] & 0x0F
        if status == NOTE_ON and len(message) >= 3 and message[2] > 0:
            self.held[(channel, message[1])] = (self.transport.position(now), message[2])
            self.last_heard = now
        elif status in (NOTE_ON, NOTE_OFF) and len(message) >= 3:
            begun = self.held.pop((channel, message[1]), None)
            self.last_heard = now
            if begun is not None:
                end = max(self.transport.position(now), begun[0] + 1e-3)
                self.recorder.heard.append(LiveNote(channel, message[1], begun[0], end, begun[1]))

    def _replan(self, pos: float, placed: float) -> float:
        """Where the next bar goes. When the DAW moved the song position (Start,
        Continue, Song Position Pointer): silence, drop what was planned before `pos`
        (everything, and start again at the next bar line, if it went back), and
        start at the next bar line if it went past what was planned."""
        if self.transport.epoch == self.epoch:
            return placed
        self.epoch = self.transport.epoch
        self.all_notes_off()
        if pos < self.played_until:
            self.heap, self.played_until = [], pos
            return _bar_line(pos, self.options.quarters_per_bar)
        self.heap = [e for e in self.heap if e.quarters >= pos]
        heapq.heapify(self.heap)
        return placed if pos <= placed else _bar_line(pos, self.options.quarters_per_bar)

    # ------------------------------------------------------------------ output

    def _place(self, bar: LiveBar) -> None:
        """Put a bar's note-ons and note-offs on the heap."""
        for note in bar.notes:
            self.seq += 1
            heapq.heappush(self.heap, _Event(note.end, 0, self.seq, note))
            heapq.heappush(self.heap, _Event(note.start, 1, self.seq, note))

    def _play_due(self) -> None:
        """Send every event whose time has come."""
        if not self.transport.playing:
            return
        while self.heap:
            event = self.heap[0]
            when = self.transport.seconds_at(event.quarters)
            now = self.clock.now()
            if when > now:
                return
            heapq.heappop(self.heap)
            self._send_event(event, when, now)

    def _send_event(self, event: _Event, when: float, now: float) -> None:
        note, key = event.note, (event.note.channel, event.note.pitch)
        if event.order == 0:  # note-off: only if this very note still sounds
            if self.sounding.get(key) is note:
                self.out.send((NOTE_OFF | note.channel, note.pitch, 0))
                del self.sounding[key]
                self.recorder.played.append(note)
            return
        if key in self.sounding:  # the same pitch again: end the old one first
            self._cut(key, event.quarters)
        self.out.send((NOTE_ON | note.channel, note.pitch, note.velocity))
        sent = self.clock.now()
        self.sounding[key] = note
        self.played_until = max(self.played_until, event.quarters)
        self.report.notes_played += 1
        self.report.lateness.append(sent - when)
        if self.report.first_note_after is None and self.started is not None:
            self.report.first_note_after = sent - self.started

    def _cut(self, key: tuple[int, int], at: float) -> None:
        """Silence one sounding note now (at `at` quarters); record it so cut."""
        note = self.sounding.pop(key)
        self.out.send((NOTE_OFF | note.channel, note.pitch, 0))
        end = max(min(at, note.end), note.start + 1e-3)
        self.recorder.played.append(
            LiveNote(note.channel, note.pitch, note.start, end, note.velocity)
        )

    def all_notes_off(self) -> None:
        """A note-off for every sounding note, then All Notes Off (CC 123) on every
        channel the music uses. Safe to call at any time, any number of times."""
        at = self.transport.position(self.clock.now()) if self.transport.playing else math.inf
        for key in list(self.sounding):
            self._cut(key, at)
        for channel in sorted(self.music.channels):
            self.out.send((CONTROL | channel, ALL_NOTES_OFF, 0))

    def _sleep(self, until: float | None = None, at: float | None = None) -> None:
        """Until the next event, the next look at the input port, `until` (quarters)
        or `at` (seconds)."""
        now = self.clock.now()
        wake = now + (self.options.poll if self.inport is not None else IDLE_SECONDS)
        if at is not None and at > now:
            wake = min(wake, at)
        if self.transport.playing:
            for quarters in [self.heap[0].quarters] if self.heap else []:
                wake = min(wake, self.transport.seconds_at(quarters))
            if until is not None and self.transport.seconds_at(until) > now:
                wake = min(wake, self.transport.seconds_at(until))
        self.clock.sleep_until(wake)


def _bar_line(pos: float, quarters_per_bar: float) -> float:
    """The first bar line at or after `pos` (quarters)."""
    return math.ceil(pos / quarters_per_bar - 1e-9) * quarters_per_bar

"""What `musicgen live` plays: the network's side of its three modes, bar by bar.

Each mode is a `live.Music` that the player's worker thread asks for bars:

- `ContinueMusic`: one endless token stream (or `bars` bars) from the checkpoint, with
  generate's controls (--key, --density, --instruments, --temperature, --seed); each
  call samples up to the next `Bar` and gives that bar's notes;
- `AnswerMusic`: a reply to a phrase: the phrase (the player's notes, as one part of
  the player's instrument) is encoded, the network is stepped through it, and as many
  bars as the phrase had (at most MAX_PHRASE_BARS) are sampled after it, in the same
  part, bar by bar, so that the reply can start as soon as its first bar is ready;
- `AccompanyMusic` (checkpoints with parts: steps, tracks): the added parts (--add, default drums and
  bass) for the next bar. The network hears the last CONTEXT_BARS bars - the player's
  notes as heard so far and the added parts' own notes - as a short piece whose header
  names every part, from a fresh state, and samples one more bar in which the player's
  part is kept silent (`AddedPartsGrammar`); so the added parts follow what the player
  plays, one bar later. A fresh state per bar keeps each call short (about a hundred
  tokens) and its cost flat however long the session runs. The bar is asked for one
  beat before it starts, earlier when the last one took longer (a busy machine).

Notes are `live.LiveNote`s: pitched parts on MIDI channels 0-8 and 10-15 in header
order, the drum kit on channel 9 (General MIDI channel 10). The sampling is
generate.py's: `plan_request`, `load_model` (NumPy engine), `start_grammar`, and
`sampling.sample_next` with one Generator seeded from --seed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicgen.config import SampleConfig
from musicgen.constraints import Controls
from musicgen.encoding.base import BOS, EOS, Grammar, NarrowedGrammar
from musicgen.encoding.remi import BAR, PITCH, VELOCITY
from musicgen.encoding.tracks import DRUM, HOLD, PROGRAM, TRACK
from musicgen.engine import default_sample, load_model, start_grammar, step_function
from musicgen.errors import UsageError, UserError
from musicgen.generate import GenerateRequest, plan_request
from musicgen.instruments import known_requests, parse_instruments
from musicgen.live import (
    DRUM_CHANNEL,
    Clock,
    InputPort,
    InternalTransport,
    LiveBar,
    LiveNote,
    LiveOptions,
    LiveReport,
    MidiClockTransport,
    NullPort,
    OutputPort,
    Player,
    RealClock,
)
from musicgen.midi_io import write_midi
from musicgen.midi_ports import open_input, open_output
from musicgen.npmodel import one_blas_thread
from musicgen.sampling import sample_next
from musicgen.score import DRUM_PROGRAM, Note, Part, Score

MODES = ("continue", "answer", "accompany")
ENDLESS_BARS = 1_000_000  # the grammar's length when no --bars is given
MAX_PHRASE_BARS = 8  # answer mode hears at most the phrase's last bars, and replies as long
CONTEXT_BARS = 2  # accompany mode: bars the network hears before the one it writes
MAX_TOKENS_PER_BAR = 2000  # safety net
PITCHED_CHANNELS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15)
DEFAULT_ADD = "drums,bass"
LOOKAHEAD_BARS = 1  # continue: bars sampled past the one played (held notes keep their length)
CONTINUE_AHEAD_BARS = 2  # continue mode keeps this many bars sampled ahead
AHEAD_MARGIN = 1.5  # accompany asks this many times its last bar's sampling time ahead


@dataclass
class LiveRequest:
    """What to play; the defaults are `musicgen live`'s."""

    mode: str = "continue"
    bars: int | None = None  # continue: the piece's length; None = endless
    tempo: float = 120.0  # bpm the music is written for (and played at, internal clock)
    key: str | None = None
    density: str | None = None
    instruments: str | None = None  # continue: the parts; answer: the reply's instrument
    add: str | None = None  # accompany: the added parts (default DEFAULT_ADD)
    sample: SampleConfig = field(default_factory=default_sample)


def make_music(
    checkpoint: object, request: LiveRequest
) -> ContinueMusic | AnswerMusic | AccompanyMusic:
    """The `live.Music` for `request.mode`; UsageError for a mode or checkpoint that
    cannot do it (the CLI's messages)."""
    if request.mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, not {request.mode!r}")
    net = Network(checkpoint, request)
    if request.mode == "continue":
        return ContinueMusic(net, request)
    if request.mode == "answer":
        return AnswerMusic(net, request)
    return AccompanyMusic(net, request)


# ----------------------------------------------------------------------------- the network


class Network:
    """A checkpoint ready to sample from: its encoding, its NumPy network, the
    controls, the sampling settings and one seeded Generator."""

    def __init__(self, checkpoint: object, request: LiveRequest):
        asked = GenerateRequest(num=1, tempo=request.tempo, sample=request.sample)
        asked.check()
        plan = plan_request(checkpoint, asked)  # type: ignore[arg-type]
        if not plan.encoding.counts_bars:
            raise UsageError(
                f"`musicgen live` plays bar by bar: it needs a remi, tracks or steps checkpoint; "
                f"{plan.name} uses the {plan.encoding.name} encoding"
            )
        self.plan, self.encoding = plan, plan.encoding
        self.request = request
        self.model = load_model(plan.checkpoint, "numpy")
        self.rng = np.random.default_rng(request.sample.seed)
        self.bar_id = self.encoding.first_id[BAR]
        self.controls(closing=False)  # check --key/--density now, not on the worker

    def controls(self, closing: bool) -> Controls:
        """The asked controls; `closing`: also end on a cadence in the key."""
        return Controls.request(
            self.encoding,
            key=self.request.key,
            density=self.request.density,
            tempo=self.request.tempo,
            density_levels=self.plan.density_levels,
            cadence=closing,
        )

    def held(self) -> dict[str, Any]:
        """`start_grammar`'s part options: each part held to its learned profile, the
        header to the programs the model knows."""
        return {"profiles": self.plan.profiles, "known": self.plan.programs}

    def known(self, text: str) -> list[tuple[int, ...]]:
        """An --instruments/--add list narrowed to what the model knows."""
        return known_requests(parse_instruments(text), self.plan.programs)

    def favourite(self, programs: Sequence[int]) -> int:
        """Of `programs`, the one the model saw in the most pieces."""
        return max(programs, key=lambda p: (self.plan.programs.get(p, 0), -p))


class Stream:
    """One token sequence being sampled: the network's state, the grammar, the ids."""

    def __init__(self, net: Network, grammar: Grammar, prefix: Sequence[int]):
        self.net, self.grammar = net, grammar
        self.ids = [int(i) for i in prefix]
        with one_blas_thread():  # the network's state (and parts) carried from call to call
            self.step = step_function(net.model, 1, self.ids[:-1])

    @property
    def done(self) -> bool:
        return self.grammar.done

    def to_next_bar(self) -> None:
        """Sample until the grammar reads a `Bar` (the next bar begins) or ends."""
        net, config = self.net, self.net.request.sample
        with one_blas_thread():
            for _ in range(MAX_TOKENS_PER_BAR):
                logits = self.step(np.array([self.ids[-1]], np.int32))
                mask = self.grammar.allowed()[None, :]
                token_id = int(sample_next(logits, mask, config, [net.rng])[0])
                self.grammar.advance(token_id)
                self.ids.append(token_id)
                if token_id == net.bar_id or self.grammar.done:
                    return
        raise UserError(
            f"a bar did not end within {MAX_TOKENS_PER_BAR} tokens; try a lower --temperature"
        )


def part_channels(programs: Sequence[int]) -> list[int]:
    """The MIDI channel of each part: pitched parts on PITCHED_CHANNELS in order, the
    drum kit on DRUM_CHANNEL."""
    out, pitched = [], iter(PITCHED_CHANNELS)
    for program in programs:
        out.append(DRUM_CHANNEL if program == DRUM_PROGRAM else next(pitched))
    return out


def header_programs(net: Network, ids: Sequence[int]) -> list[int]:
    """The programs of a tracks/steps header (remi: one part, program 0)."""
    first = net.encoding.first_id.get(PROGRAM)
    if first is None:
        return [0]
    programs = []
    for token_id in ids:
        if token_id == net.bar_id:
            break
        if first <= token_id < first + 129:
            programs.append(int(token_id) - first)
    return programs


def bar_notes(score: Score, start: float, end: float, channels: Sequence[int]) -> list[LiveNote]:
    """The notes of `score` that begin in [start, end) quarters, each on its part's
    channel, with times from `start`."""
    out = []
    for part, channel in zip(score.parts, channels, strict=False):
        for n in part.notes:
            if start - 1e-9 <= n.start < end - 1e-9:
                out.append(LiveNote(channel, n.pitch, n.start - start, n.end - start, n.velocity))
    return sorted(out, key=lambda n: (n.start, n.channel, n.pitch))


# ----------------------------------------------------------------------------- continue


class ContinueMusic:
    """Endless music (or `bars` bars) from the checkpoint, one bar per call."""

    mode = "bars"

    def __init__(self, net: Network, request: LiveRequest):
        self.net = net
        parts = net.known(request.instruments) if request.instruments else None
        if parts and not net.encoding.has_parts:
            raise UsageError("--instruments needs a multi-track (tracks or steps) checkpoint")
        length = request.bars if request.bars is not None else ENDLESS_BARS
        controls = net.controls(closing=request.bars is not None)
        grammar = start_grammar(net.encoding, length, [], controls, parts, **net.held())
        self.stream = Stream(net, grammar, [BOS])
        self.stream.to_next_bar()  # the header and the first Bar
        self.programs = header_programs(net, self.stream.ids)
        self.part_channel = part_channels(self.programs)
        self.channels = dict(zip(self.part_channel, self.programs, strict=True))
        self.player_program = 0
        self.ahead = 4.0 * CONTINUE_AHEAD_BARS
        self.bar_ends: list[float] = []  # quarters: where each sampled bar ends
        self.played = 0  # bars handed out
        self.score = Score()  # the stream decoded so far

    def bar(self, start: float, heard: list[LiveNote]) -> LiveBar | None:
        """The stream's next bar; None once the piece has ended. The stream is sampled
        `LOOKAHEAD_BARS` past the bar handed out, so a note sounding over the bar line
        keeps its length (steps and remi say when a note ends only where it ends)."""
        stream = self.stream
        while len(self.bar_ends) <= self.played + LOOKAHEAD_BARS and not stream.done:
            stream.to_next_bar()
            ids = stream.ids[:-1] if stream.ids[-1] in (self.net.bar_id, EOS) else stream.ids
            self.score = self.net.encoding.decode(ids)
            self.bar_ends.append(self.score.length)
        if self.played >= len(self.bar_ends):
            return None
        begin = self.bar_ends[self.played - 1] if self.played else 0.0
        end = self.bar_ends[self.played]
        self.played += 1
        notes = bar_notes(self.score, begin, end, self.part_channel)
        return LiveBar(0.0, end - begin, notes).moved_to(start)

    def reply(self, phrase: list[LiveNote]) -> Iterator[LiveBar]:
        raise NotImplementedError("continue mode does not answer phrases")


# ----------------------------------------------------------------------------- answer


class AnswerMusic:
    """Replies to each phrase the player plays, in the player's instrument."""

    mode = "answer"
    ahead = 0.0

    def __init__(self, net: Network, request: LiveRequest):
        self.net = net
        known = [p for p in net.plan.programs if p != DRUM_PROGRAM] or [0]
        if request.instruments:
            known = list(net.known(request.instruments)[0])
        self.player_program = 0 if 0 in known else net.favourite(known)
        self.channels = {0: self.player_program}

    def bar(self, start: float, heard: list[LiveNote]) -> LiveBar | None:
        raise NotImplementedError("answer mode plays replies, not bars")

    def reply(self, phrase: list[LiveNote]) -> Iterator[LiveBar]:
        """The reply to `phrase` (its first note at 0 quarters), bar by bar from 0."""
        net, encoding = self.net, self.net.encoding
        score = _phrase_score(phrase, self.player_program, net.request.tempo)
        body = [int(i) for i in encoding.encode(score).ids[1:-1]]
        if self.player_program not in header_programs(net, body):
            return  # no note of the phrase fits the model's range
        bars = min(body.count(net.bar_id), MAX_PHRASE_BARS)
        prefix = [*body, net.bar_id]
        grammar = start_grammar(encoding, bars, prefix, net.controls(closing=True), **net.held())
        stream = Stream(net, grammar, [BOS, *prefix])
        heard_until = encoding.decode([BOS, *body]).length
        done_until = heard_until
        while not stream.done:
            stream.to_next_bar()
            ids = stream.ids[:-1] if stream.ids[-1] in (net.bar_id, EOS) else stream.ids
            decoded = encoding.decode(ids)
            notes = bar_notes(decoded, done_until, decoded.length, [0])
            bar = LiveBar(0.0, decoded.length - done_until, notes)
            yield bar.moved_to(done_until - heard_until)
            done_until = decoded.length


def _phrase_score(phrase: list[LiveNote], program: int, tempo: float) -> Score:
    """The player's notes (quarters) as a one-part piece: its last MAX_PHRASE_BARS
    bars of 4/4, moved to start at 0."""
    end = max(n.end for n in phrase)
    bars = max(1, int(np.ceil(end / 4.0 - 1e-9)))
    cut = max(0, bars - MAX_PHRASE_BARS) * 4.0
    notes = [
        Note(n.pitch, n.start - cut, max(n.end - cut, n.start - cut + 0.01), max(1, n.velocity))
        for n in phrase
        if n.start >= cut
    ]
    notes = _no_overlaps(notes)
    part = Part(program, notes, "Player")
    return Score(parts=[part], tempos=[(0.0, tempo)], end=bars * 4.0 - cut)


def _no_overlaps(notes: list[Note]) -> list[Note]:
    """Sorted, each same-pitch overlap cut where the next note begins."""
    out: list[Note] = []
    last: dict[int, int] = {}
    for n in sorted(notes, key=lambda n: (n.start, n.pitch)):
        j = last.get(n.pitch)
        if j is not None and out[j].end > n.start:
            if n.start <= out[j].start:
                continue
            out[j] = Note(n.pitch, out[j].start, n.start, out[j].velocity)
        last[n.pitch] = len(out)
        out.append(n)
    return sorted(out, key=lambda n: (n.start, n.pitch))


# ----------------------------------------------------------------------------- accompany


class AccompanyMusic:
    """The added parts for the bar after the one the player is playing (steps, tracks)."""

    mode = "bars"
    ahead = 1.0  # quarters: the player's bar is heard up to its last beat (see `bar`)

    def __init__(self, net: Network, request: LiveRequest):
        if not net.encoding.has_parts:
            raise UsageError(
                f"live accompany needs a checkpoint with parts (steps or tracks, such as "
                f"checkpoints/band); {net.plan.name} uses the {net.encoding.name} encoding"
            )
        self.net = net
        known = [p for p in net.plan.programs if p != DRUM_PROGRAM] or [0]
        self.player_program = 0 if 0 in known else net.favourite(known)
        added = [net.favourite(r) for r in net.known(request.add or DEFAULT_ADD)]
        if self.player_program in added:
            raise UsageError(
                f"--add names the player's own instrument (program {self.player_program})"
            )
        pitched = sorted(p for p in [self.player_program, *added] if p != DRUM_PROGRAM)
        self.programs = pitched + [DRUM_PROGRAM] * (DRUM_PROGRAM in added)
        self.player_part = self.programs.index(self.player_program)
        self.part_channel = part_channels(self.programs)
        self.channels = {
            ch: p
            for i, (ch, p) in enumerate(zip(self.part_channel, self.programs, strict=True))
            if i != self.player_part
        }
        self.written: list[tuple[int, Note]] = []  # (part, note) in session quarters
        self.bar_length = 4.0

    def bar(self, start: float, heard: list[LiveNote]) -> LiveBar:
        """The added parts' notes of the bar at `start` (quarters), having heard the
        CONTEXT_BARS bars before it."""
        began = time.perf_counter()
        net, length = self.net, self.bar_length
        context = min(CONTEXT_BARS, int(start // length + 1e-9))
        window = start - context * length
        prefix = self._context_ids(heard, window, context)
        grammar = start_grammar(net.encoding, 1, prefix, net.controls(closing=False), **net.held())
        grammar = AddedPartsGrammar(grammar, net.encoding, {self.player_part}, prefix)
        stream = Stream(net, grammar, [BOS, *prefix])
        while not stream.done:
            stream.to_next_bar()
        decoded = net.encoding.decode(stream.ids)
        notes = bar_notes(decoded, context * length, (context + 1) * length, self.part_channel)
        notes = [n for n in notes if n.channel != self.part_channel[self.player_part]]
        channel_part = {ch: i for i, ch in enumerate(self.part_channel)}
        for n in notes:
            self.written.append(
                (channel_part[n.channel], Note(n.pitch, n.start + start, n.end + start, n.velocity))
            )
        self._adapt_ahead(time.perf_counter() - began)
        return LiveBar(0.0, length, notes).moved_to(start)

    def _adapt_ahead(self, seconds: float) -> None:
        """Ask for the next bar early enough: one beat before it, or AHEAD_MARGIN x the
        time this bar took (a busy machine), at most a bar."""
        quarters = AHEAD_MARGIN * seconds * self.net.request.tempo / 60.0
        self.ahead = min(self.bar_length, max(1.0, quarters))

    def _context_ids(self, heard: list[LiveNote], window: float, bars: int) -> list[int]:
        """The header naming every part, the context bars' ids (Track ids renumbered
        to that header), and the `Bar` that opens the new bar."""
        net, encoding = self.net, self.net.encoding
        header = [encoding.first_id[PROGRAM] + p for p in self.programs]
        if bars == 0:
            return [*header, net.bar_id]
        end = window + bars * self.bar_length
        parts_notes: list[list[Note]] = [[] for _ in self.programs]
        for n in heard:
            if window <= n.start < end:
                parts_notes[self.player_part].append(_moved(n, window))
        for part, n in self.written:
            if window <= n.start < end:
                parts_notes[part].append(
                    Note(n.pitch, n.start - window, n.end - window, n.velocity)
                )
        parts = [
            Part(p, _no_overlaps(notes))
            for p, notes in zip(self.programs, parts_notes, strict=True)
        ]
        score = Score(
            parts=[p for p in parts if p.notes],
            tempos=[(0.0, net.request.tempo)],
            end=bars * self.bar_length,
        )
        ids = [int(i) for i in encoding.encode(score).ids[1:-1]]
        encoded = header_programs(net, ids)
        body = ids[len(encoded) :]
        track = encoding.first_id[TRACK]
        renumber = {track + i: track + self.programs.index(p) for i, p in enumerate(encoded)}
        return [*header, *(renumber.get(i, i) for i in body), net.bar_id]


def _moved(n: LiveNote, by: float) -> Note:
    """A heard note as a score note `by` quarters earlier."""
    return Note(
        n.pitch, n.start - by, max(n.end - by, n.start - by + 0.01), max(1, min(127, n.velocity))
    )


class AddedPartsGrammar(NarrowedGrammar):
    """Keeps `silent` parts (the player's) out of the new music: no Track of theirs,
    and no note while the current part is one of them. `history`: the ids the inner
    grammar has read after BOS (the current part is the last Track there)."""

    def __init__(self, inner: Grammar, encoding: object, silent: set[int], history: Sequence[int]):
        super().__init__(inner)
        enc = encoding
        ranges = enc.id_range  # type: ignore[attr-defined]
        self.track, self.track_end = ranges[TRACK]
        self.silent = set(silent)
        kinds = [k for k in (VELOCITY, PITCH, DRUM, HOLD) if k in ranges]  # HOLD: steps
        self.note_ids = np.concatenate([np.arange(*ranges[k]) for k in kinds])
        self.part: int | None = None
        for token_id in history:
            self._observe(int(token_id))

    def allowed(self) -> np.ndarray:
        mask = self.inner.allowed().copy()
        for part in self.silent:
            mask[self.track + part] = False
        if self.part in self.silent:
            mask[self.note_ids] = False
        return mask

    def _observe(self, token_id: int) -> None:
        if self.track <= token_id < self.track_end:
            self.part = token_id - self.track
        elif token_id == BOS:
            self.part = None


# ----------------------------------------------------------------------------- a session


def play(
    checkpoint: object,
    request: LiveRequest,
    *,
    port: str | None = None,
    clock: str = "internal",
    in_port: str | None = None,
    record: str | Path | None = None,
    silence: float = 1.0,
    out: OutputPort | None = None,
    inport: InputPort | None = None,
    timer: Clock | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> LiveReport:
    """A `musicgen live` session: open the ports, load the music, play until it ends,
    --bars is reached, `stop` is set or Ctrl-C; then write --record.

    port: the output port's name (None: a virtual port "musicgen"; "none": no port,
    only the record file); clock: "internal" (request.tempo) or "midi" (the DAW's
    clock, read on the input port); in_port: the input port's name (None: a virtual
    port "musicgen in"); opened for answer, accompany and the MIDI clock. out, inport,
    timer: ports and a clock to use instead (tests). on_ready(line): told once the
    ports are open. PortsUnavailableError (one line) when a port cannot be made.
    """
    _check_session(request, port, clock, record, silence)
    needs_input = request.mode != "continue" or clock == "midi"
    opened: list[Any] = []
    try:
        if out is None:
            out = NullPort() if port == "none" else _opened(opened, open_output(port))
        if inport is None and needs_input:
            inport = _opened(opened, open_input(in_port))
        music = make_music(checkpoint, request)
        transport = (
            MidiClockTransport(request.tempo)
            if clock == "midi"
            else InternalTransport(request.tempo)
        )
        options = LiveOptions(bars=request.bars, silence=silence)
        player = Player(
            music, out, timer or RealClock(), transport, inport=inport, options=options, stop=stop
        )
        if on_ready is not None:
            on_ready(_ready_line(out, inport, request, clock))
        try:
            report = player.run()
        except KeyboardInterrupt:
            report = player.report
            report.interrupted = True
        if record is not None:
            tempo = getattr(transport, "tempo", request.tempo)
            score = player.recorder.score(music.channels, music.player_program, tempo)
            write_midi(score, record, track_name="musicgen live")
        return report
    finally:
        for opened_port in opened:
            opened_port.close()


def _check_session(
    request: LiveRequest, port: str | None, clock: str, record: str | Path | None, silence: float
) -> None:
    """UsageError (the CLI's message) for options that do not fit together."""
    if port == "none" and record is None:
        raise UsageError("--port none plays into the record file alone: add --record FILE.mid")
    if clock not in ("internal", "midi"):
        raise UsageError(f"--clock must be internal or midi, not {clock!r}")
    if request.bars is not None and request.bars < 1:
        raise UsageError("--bars must be at least 1")
    if silence <= 0:
        raise UsageError("--silence must be more than 0 seconds")
    if record is not None and not Path(record).resolve().parent.is_dir():
        raise UsageError(f"no folder for --record {record}")


def _opened(opened: list[Any], port: Any) -> Any:
    opened.append(port)
    return port


def _ready_line(out: OutputPort, inport: InputPort | None, request: LiveRequest, clock: str) -> str:
    """What the session plays into and listens to, for people."""
    into = getattr(out, "name", "a port")
    heard = f", listening on {getattr(inport, 'name', 'a port')}" if inport is not None else ""
    timing = "the MIDI clock" if clock == "midi" else f"{request.tempo:g} bpm"
    return f"musicgen live ({request.mode}): playing into {into}{heard}, at {timing}; Ctrl-C stops"

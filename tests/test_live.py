"""`musicgen live` without a sound card: the scheduler and the modes against in-process
ports and a fake clock (what a port received, at which time), the real rtmidi backend
where the machine has one, and the CLI's one line where it has none."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from musicgen import live_music, midi_ports
from musicgen.cli import main
from musicgen.config import EncodingConfig, SampleConfig
from musicgen.errors import UsageError
from musicgen.live import (
    ALL_NOTES_OFF,
    CLOCK,
    CONTINUE,
    SONG_POSITION,
    START,
    STOP,
    InternalTransport,
    LiveBar,
    LiveNote,
    LiveOptions,
    MidiClockTransport,
    Player,
)
from musicgen.midi_io import read_score
from tests.music import assert_arrangement_ready, untrained_checkpoint

BEAT = 0.5  # seconds per quarter at 120 bpm
PULSE = BEAT / 24


class FakeClock:
    """Virtual seconds: sleeping moves time on at once, but never past the next message
    of an input port in `inputs` (so each is read when it comes). `at(t, fn)` runs fn
    when the clock reaches t (to stop the session in the middle of it)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.hooks: list[tuple[float, object]] = []
        self.inputs: list[FakeIn] = []

    def now(self) -> float:
        return self.t

    def sleep_until(self, when: float) -> None:
        coming = [t for port in self.inputs for t, _ in port.pending[:1] if t > self.t]
        self.t = max(self.t, min([when, *coming]))
        for hook in [h for h in self.hooks if h[0] <= self.t]:
            self.hooks.remove(hook)
            hook[1]()

    def at(self, t: float, fn) -> None:
        self.hooks.append((t, fn))


class FakeOut:
    """An output port that keeps (seconds, message) of everything sent."""

    name = "fake out"

    def __init__(self, clock: FakeClock):
        self.clock, self.got = clock, []

    def send(self, message) -> None:
        self.got.append((round(self.clock.now(), 6), tuple(message)))

    def close(self) -> None:
        pass

    def note_ons(self) -> list[tuple[float, int, int]]:
        """(seconds, channel, pitch) of every note-on."""
        return [(t, m[0] & 15, m[1]) for t, m in self.got if m[0] & 0xF0 == 0x90 and m[2] > 0]

    def sounding(self) -> Counter:
        """Note-ons minus note-offs per (channel, pitch) over the session."""
        count: Counter = Counter()
        for _, m in self.got:
            if m[0] & 0xF0 == 0x90 and m[2] > 0:
                count[(m[0] & 15, m[1])] += 1
            elif m[0] & 0xF0 in (0x80, 0x90):
                count[(m[0] & 15, m[1])] -= 1
        return +count

    def all_notes_off_at(self) -> list[float]:
        return sorted({t for t, m in self.got if m[0] & 0xF0 == 0xB0 and m[1] == ALL_NOTES_OFF})


class FakeIn:
    """An input port fed from a list of (seconds, message)."""

    name = "fake in"

    def __init__(self, clock: FakeClock, messages):
        self.clock, self.pending = clock, sorted(messages, key=lambda m: m[0])
        clock.inputs.append(self)

    def receive(self):
        now = self.clock.now()
        ready = [m for t, m in self.pending if t <= now + 1e-12]
        self.pending = [(t, m) for t, m in self.pending if t > now + 1e-12]
        return ready

    def close(self) -> None:
        pass


class ScriptedMusic:
    """A Music whose bar k holds a long note on beat 0 (pitch 60 + k) and a short one on
    beat 2, on channel 0; `fail_at`: bar index that raises."""

    mode = "bars"
    channels = {0: 0}
    player_program = 0

    def __init__(self, ahead: float = 8.0, fail_at: int | None = None, bars: int | None = None):
        self.ahead, self.fail_at, self.bars, self.asked = ahead, fail_at, bars, []
        self.heard_when_asked: list[list[LiveNote]] = []

    def bar(self, start: float, heard: list[LiveNote]) -> LiveBar | None:
        k = len(self.asked)
        self.asked.append(start)
        self.heard_when_asked.append(list(heard))
        if k == self.fail_at:
            raise RuntimeError("the network broke")
        if self.bars is not None and k >= self.bars:
            return None
        notes = [LiveNote(0, 60 + k, 0.0, 3.0, 100), LiveNote(0, 72, 2.0, 2.5, 90)]
        return LiveBar(0.0, 4.0, notes).moved_to(start)

    def reply(self, phrase):  # pragma: no cover - not answer mode
        raise NotImplementedError


class ScriptedAnswer:
    """Answer mode: replies to a phrase with its pitches a fifth up, one per beat."""

    mode = "answer"
    ahead = 0.0
    channels = {0: 0}
    player_program = 0

    def __init__(self) -> None:
        self.phrases: list[list[LiveNote]] = []

    def bar(self, start, heard):  # pragma: no cover - not bars mode
        raise NotImplementedError

    def reply(self, phrase: list[LiveNote]) -> Iterator[LiveBar]:
        self.phrases.append(phrase)
        notes = [LiveNote(0, n.pitch + 7, i, i + 0.5, 80) for i, n in enumerate(phrase)]
        yield LiveBar(0.0, 4.0, [n for n in notes if n.start < 4])
        yield LiveBar(0.0, 4.0, [n.moved(-4) for n in notes if n.start >= 4]).moved_to(4.0)


def play_scripted(music, clock=None, inport=None, transport=None, **options):
    clock = clock or FakeClock()
    out = FakeOut(clock)
    transport = transport or InternalTransport(120.0)
    player = Player(
        music, out, clock, transport, inport=inport,
        options=LiveOptions(lead=0.0, poll=0.05, **options),
    )  # fmt: skip
    return player, out, player.run()


# ----------------------------------------------------------------------------- scheduler


def test_notes_go_out_at_their_times_and_bars_stops_after_n_bars():
    player, out, report = play_scripted(ScriptedMusic(), bars=3)
    assert out.got[0] == (0.0, (0xC0, 0))  # the program first
    expected = []
    for k in range(3):
        expected += [(k * 2.0, 0, 60 + k), (k * 2.0 + 2 * BEAT, 0, 72)]
    assert out.note_ons() == expected
    assert report.bars_played == 3 and report.notes_played == 6
    assert max(report.lateness) == 0.0
    # the last note ends at 2 bars + 3 beats, then All Notes Off
    assert out.all_notes_off_at() == [2 * 2.0 + 3 * BEAT]
    assert not out.sounding() and report.left_sounding == 0


class RepeatedNote(ScriptedMusic):
    """One bar: pitch 60 on beats 0 and 1 (the first ends where the second begins)."""

    def bar(self, start, heard):
        if self.asked:
            return None
        self.asked.append(start)
        notes = [LiveNote(0, 60, 0.0, 1.0, 100), LiveNote(0, 60, 1.0, 2.0, 100)]
        return LiveBar(0.0, 4.0, notes).moved_to(start)


def test_note_offs_come_before_note_ons_at_the_same_time():
    _, out, _ = play_scripted(RepeatedNote())
    at_beat_one = [m for t, m in out.got if t == BEAT]
    assert at_beat_one == [(0x80, 60, 0), (0x90, 60, 100)]
    assert not out.sounding()


def test_stop_sends_all_notes_off_and_leaves_nothing_sounding():
    clock, stop = FakeClock(), threading.Event()
    clock.at(2.6, stop.set)  # bar 1's long note (61) sounds
    out = FakeOut(clock)
    player = Player(ScriptedMusic(), out, clock, InternalTransport(120.0), stop=stop)
    player.options.lead = 0.0
    report = player.run()
    offs = [m for t, m in out.got if t >= 2.6]
    assert (0x80, 61, 0) in offs
    assert (0xB0, ALL_NOTES_OFF, 0) in offs
    assert not out.sounding() and report.left_sounding == 0
    assert not [m for t, m in out.got if t > 2.6]  # nothing after the stop


def test_an_error_in_the_music_still_sends_all_notes_off():
    clock = FakeClock()
    out = FakeOut(clock)
    player = Player(ScriptedMusic(fail_at=1, ahead=1.0), out, clock, InternalTransport(120.0))
    with pytest.raises(RuntimeError, match="network broke"):
        player.run()
    assert out.note_ons()  # bar 0 began
    assert out.got[-1][1] == (0xB0, ALL_NOTES_OFF, 0)
    assert not out.sounding()


def test_a_bar_is_asked_for_ahead_and_the_music_ending_ends_the_session():
    music = ScriptedMusic(ahead=1.0, bars=2)
    _, out, report = play_scripted(music)
    assert music.asked == [0.0, 4.0, 8.0]  # the third call says the music has ended
    assert report.bars_played == 2 and len(out.note_ons()) == 4


def test_record_keeps_what_was_played(tmp_path):
    player, _, _ = play_scripted(ScriptedMusic(), bars=2)
    score = player.recorder.score({0: 0}, 0, 120.0)
    assert [(n.pitch, n.start, n.end) for n in score.notes] == [
        (60, 0.0, 3.0),
        (72, 2.0, 2.5),
        (61, 4.0, 7.0),
        (72, 6.0, 6.5),
    ]


# ----------------------------------------------------------------------------- MIDI clock


def clock_messages(start: float, pulses: int, first_pulse: int = 0):
    """Clock pulses at 120 bpm from `start` seconds."""
    return [(start + i * PULSE, (CLOCK,)) for i in range(pulses)]


def test_midi_clock_transport_counts_pulses_and_measures_tempo():
    transport = MidiClockTransport(tempo=100.0)
    transport.feed((START,), 0.0)
    for i in range(48):
        transport.feed((CLOCK,), 1.0 + i * PULSE)
    assert transport.playing
    assert transport.tempo == pytest.approx(120.0, rel=0.01)
    last = 1.0 + 47 * PULSE
    assert transport.position(last) == pytest.approx(47 / 24)
    assert transport.seconds_at(2.0) == pytest.approx(last + PULSE, abs=1e-3)
    transport.feed((STOP,), last + 0.001)
    assert not transport.playing
    transport.feed((SONG_POSITION, 16, 0), last + 0.1)  # 16 sixteenths = beat 4
    assert transport.position(last + 0.2) == 4.0


def test_midi_clock_start_stop_continue_and_song_position():
    clock = FakeClock()
    messages = [(0.0, (START,)), *clock_messages(0.0, 24 * 5 + 1)]  # beats 0..5
    messages += [(2.51, (STOP,))]
    messages += [(3.0, (SONG_POSITION, 32, 0)), (3.1, (CONTINUE,))]  # 32 sixteenths = beat 8
    messages += clock_messages(3.2, 24 * 6 + 1)  # beats 8..14
    messages += [(3.2 + 6 * BEAT + 0.01, (STOP,))]
    inport = FakeIn(clock, messages)
    stop = threading.Event()
    clock.at(7.0, stop.set)
    out = FakeOut(clock)
    player = Player(
        ScriptedMusic(), out, clock, MidiClockTransport(), inport=inport, stop=stop,
        options=LiveOptions(lead=0.0, poll=0.05),
    )  # fmt: skip
    player.run()
    ons = out.note_ons()
    # bar 0 on the first pulses, played in time with them (to a pulse's poll)
    assert ons[0][1:] == (0, 60) and ons[0][0] == pytest.approx(0.0, abs=0.002)
    assert ons[1][1:] == (0, 72) and ons[1][0] == pytest.approx(2 * BEAT, abs=0.002)
    # bar 1 (beat 4) begins, then Stop at 2.51 s silences it
    assert ons[2][1:] == (0, 61) and ons[2][0] == pytest.approx(4 * BEAT, abs=0.002)
    stopped = [t for t in out.all_notes_off_at() if 2.5 <= t < 3.0]
    assert stopped and min(stopped) == pytest.approx(2.51, abs=0.002)
    assert not [t for t, *_ in ons if 2.51 < t < 3.2]  # silent while stopped
    # Continue from beat 8 (a bar line): the next bar plays from the first pulse there
    after = [(t, p) for t, _, p in ons if t >= 3.2]
    assert after[0][0] == pytest.approx(3.2, abs=0.002)
    assert after[1][0] == pytest.approx(3.2 + 2 * BEAT, abs=0.002)
    assert not out.sounding()


# ----------------------------------------------------------------------------- answer


def phrase_messages(start: float, pitches: list[int], step: float = BEAT):
    out = []
    for i, p in enumerate(pitches):
        out += [(start + i * step, (0x90, p, 90)), (start + i * step + 0.4, (0x80, p, 0))]
    return out


def test_answer_replies_after_the_silence_on_the_next_beat():
    clock = FakeClock()
    inport = FakeIn(clock, phrase_messages(0.3, [60, 62, 64, 65, 67]))
    music = ScriptedAnswer()
    player, out, report = play_scripted(music, clock, inport, bars=4, silence=0.8)
    assert len(music.phrases) == 1
    phrase = music.phrases[0]
    assert [n.pitch for n in phrase] == [60, 62, 64, 65, 67] and phrase[0].start == 0.0
    last_off = 0.3 + 4 * BEAT + 0.4
    fired = last_off + 0.8
    first_reply = out.note_ons()[0][0]
    assert fired <= first_reply <= fired + BEAT  # within one beat
    assert first_reply / BEAT == pytest.approx(round(first_reply / BEAT))  # on a beat
    assert [p for _, _, p in out.note_ons()] == [67, 69, 71, 72, 74]
    assert report.reply_delays and report.reply_delays[0] <= BEAT
    assert len(player.recorder.heard) == 5 and not out.sounding()


def test_answer_drops_a_reply_begun_early_when_the_player_plays_on():
    """The reply is sampled after half the silence; a note before the silence is full
    drops it, and the reply answers the whole phrase."""
    clock = FakeClock()
    messages = phrase_messages(0.3, [60, 62, 64]) + phrase_messages(2.3, [65, 67, 69])
    music = ScriptedAnswer()
    _, out, report = play_scripted(music, clock, FakeIn(clock, messages), bars=6, silence=0.8)
    assert [len(p) for p in music.phrases] == [3, 6]  # the early one, then the whole
    assert [p for _, _, p in out.note_ons()] == [67, 69, 71, 72, 74, 76]
    assert len(report.reply_delays) == 1 and report.reply_delays[0] <= BEAT


# ----------------------------------------------------------------------------- the modes


@pytest.fixture(scope="module", params=["tracks", "steps"])
def tracks_checkpoint(tmp_path_factory, request):
    """An untrained checkpoint of each part encoding (the bundled models are steps)."""
    folder = tmp_path_factory.mktemp("live") / request.param
    return untrained_checkpoint(folder, EncodingConfig(name=request.param, controls=True))


def request(mode: str, **kw) -> live_music.LiveRequest:
    return live_music.LiveRequest(mode=mode, sample=SampleConfig(temperature=0.8, seed=3), **kw)


def test_continue_plays_the_asked_bars_into_the_record(tracks_checkpoint, tmp_path):
    clock = FakeClock()
    out = FakeOut(clock)
    path = tmp_path / "live.mid"
    req = request("continue", bars=2, instruments="bass,drums")
    report = live_music.play(tracks_checkpoint, req, record=path, out=out, timer=clock)
    assert report.left_sounding == 0 and not out.sounding()
    channels = {c for _, c, _ in out.note_ons()}
    assert channels <= {0, 9}
    assert max(report.lateness) == 0.0
    assert report.bars_played == 2
    score = read_score(path, include_drums=True)
    assert score.note_count == report.notes_played  # drums included
    assert_arrangement_ready(path)


def test_answer_mode_continues_the_phrase_in_its_instrument(tracks_checkpoint):
    net = live_music.Network(tracks_checkpoint, request("answer"))
    music = live_music.AnswerMusic(net, request("answer"))
    phrase = [LiveNote(0, 60 + i, float(i), i + 0.5, 90) for i in range(6)]  # 1.5 bars
    bars = list(music.reply(phrase))
    assert len(bars) == 2  # as many bars as the phrase
    assert [b.start for b in bars] == [0.0, 4.0]
    assert all(n.channel == 0 for b in bars for n in b.notes)
    assert all(b.start <= n.start < b.start + b.length for b in bars for n in b.notes)


def test_accompany_writes_only_the_added_parts(tracks_checkpoint):
    req = request("accompany", add="bass,drums")
    music = live_music.AccompanyMusic(live_music.Network(tracks_checkpoint, req), req)
    assert music.programs[music.player_part] == 0
    heard = [LiveNote(0, 60 + i % 5, 0.5 * i, 0.5 * i + 0.4, 90) for i in range(16)]
    player_channel = music.part_channel[music.player_part]
    for start in (0.0, 4.0, 8.0):
        bar = music.bar(start, heard)
        assert bar.start == start and bar.length == 4.0
        assert all(start <= n.start < start + 4.0 for n in bar.notes)
        assert all(n.channel != player_channel for n in bar.notes)
    assert set(music.channels) == {
        c for i, c in enumerate(music.part_channel) if i != music.player_part
    }


def test_accompany_context_renumbers_the_parts_to_the_full_header(tracks_checkpoint):
    """A bar in which only the player played still names every part in the header, and
    its Track ids point at the player's part of that header."""
    req = request("accompany", add="bass,drums")
    music = live_music.AccompanyMusic(live_music.Network(tracks_checkpoint, req), req)
    heard = [LiveNote(0, 64, 0.0, 1.0, 90)]
    ids = music._context_ids(heard, 0.0, 1)
    enc = music.net.encoding
    names = enc.describe(ids)
    assert names[: len(music.programs)] == [
        "Program_drums" if p == 128 else f"Program_{p}" for p in music.programs
    ]
    assert f"Track_{music.player_part}" in names
    assert names[-1] == "Bar"


def test_the_modes_refuse_what_they_cannot_do(tracks_checkpoint, tmp_path):
    with pytest.raises(UsageError, match="--mode"):
        live_music.make_music(tracks_checkpoint, request("sing"))
    with pytest.raises(UsageError, match="--record"):
        live_music.play(tracks_checkpoint, request("continue"), port="none")
    remi = untrained_checkpoint(tmp_path / "remi", EncodingConfig(name="remi"))
    with pytest.raises(UsageError, match="checkpoint with parts"):
        live_music.make_music(remi, request("accompany"))


# ----------------------------------------------------------------------------- real ports

HAS_SEQUENCER = os.path.exists("/dev/snd/seq")


def _rtmidi_missing() -> bool:
    try:
        import rtmidi  # noqa: F401
    except ImportError:
        return True
    return False


@pytest.mark.skipif(
    not HAS_SEQUENCER or _rtmidi_missing(),
    reason="the real MIDI backend needs python-rtmidi and the ALSA sequencer (/dev/snd/seq)",
)
def test_real_virtual_port_carries_notes():  # pragma: no cover - needs a sequencer
    import time

    out = midi_ports.open_output("musicgen test")
    inport = midi_ports.open_input("musicgen test")
    try:
        out.send((0x90, 60, 100))
        time.sleep(0.05)
        assert (0x90, 60, 100) in inport.receive()
    finally:
        out.close()
        inport.close()


@pytest.mark.skipif(HAS_SEQUENCER, reason="this machine has an ALSA sequencer")
def test_without_a_sequencer_the_port_error_is_one_line_with_the_fix():
    with pytest.raises(midi_ports.PortsUnavailableError) as info:
        midi_ports.open_output(None)
    message = str(info.value)
    assert "\n" not in message and "--port none" in message


@pytest.mark.skipif(HAS_SEQUENCER, reason="this machine has an ALSA sequencer")
def test_cli_says_in_one_line_what_to_do_without_ports(tracks_checkpoint):
    result = CliRunner().invoke(main, ["live", "--checkpoint", str(tracks_checkpoint)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "--port none" in lines[0]


def test_cli_port_none_plays_into_the_record_file(tracks_checkpoint, tmp_path):
    path = tmp_path / "take.mid"
    args = ["live", "--checkpoint", str(tracks_checkpoint), "--port", "none", "--record",
            str(path), "--bars", "1", "--tempo", "960"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "recorded in" in result.output
    assert_arrangement_ready(path)


def test_cli_port_none_needs_record(tracks_checkpoint):
    args = ["live", "--checkpoint", str(tracks_checkpoint), "--port", "none"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--record" in result.output

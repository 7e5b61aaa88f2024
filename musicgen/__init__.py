"""musicgen: learn the style of a MIDI folder with a stacked LSTM/GRU, write new MIDI files."""

__version__ = "0.2.0"

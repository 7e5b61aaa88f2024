import pytest

from musicgen.config import ConfigError, EncodingConfig, ModelConfig, RunConfig, SampleConfig


def test_run_config_round_trips_through_json(tmp_path):
    cfg = RunConfig(model=ModelConfig(cell="gru", layers=3, units=64))
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    assert RunConfig.from_json_file(path) == cfg


def test_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match="unknown"):
        ModelConfig.from_dict({"cells": "lstm"})


def test_out_of_range_value_is_an_error():
    with pytest.raises(ConfigError):
        EncodingConfig(name="midi-like").validate()
    with pytest.raises(ConfigError):
        SampleConfig(top_p=0).validate()


def test_flat_settings_route_to_their_section():
    cfg = RunConfig().with_flat({"units": 32, "seq-len": 16, "encoding": "performance"})
    assert cfg.model.units == 32
    assert cfg.train.seq_len == 16
    assert cfg.encoding.name == "performance"
    with pytest.raises(ConfigError):
        RunConfig().with_flat({"unit": 32})


def test_settings_precedence_defaults_checkpoint_file_flags(tmp_path):
    from musicgen.config import read_settings_file, resolve_settings

    assert resolve_settings() == RunConfig()
    stored = RunConfig().with_flat({"units": 64, "layers": 3, "seq_len": 32, "epochs": 7})
    path = tmp_path / "settings.json"
    # a checkpoint's config.json is a valid settings file: its metadata keys are left out
    path.write_text('{"model": {"units": 96}, "seq-len": 48, "vocab_size": 9, "data": {}}')
    from_file = read_settings_file(path)
    assert from_file == {"model": {"units": 96}, "seq-len": 48}
    cfg = resolve_settings(RunConfig(), stored, from_file, {"seq_len": 24})
    assert cfg.model.units == 96  # the file beats the checkpoint
    assert cfg.train.seq_len == 24  # a flag beats the file
    assert cfg.model.layers == 3 and cfg.train.epochs == 7  # the checkpoint beats defaults
    assert cfg.model.cell == "gru"  # untouched default
    assert resolve_settings(flags={"units": 8}).model.units == 8
    assert resolve_settings(RunConfig().with_flat({"units": 5})).model.units == 5
    with pytest.raises(ConfigError, match="unknown setting"):
        resolve_settings(flags={"unit": 8})
    with pytest.raises(ConfigError):
        resolve_settings(flags={"units": "many"})  # a TypeError inside becomes ConfigError
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ConfigError, match="cannot read"):
        read_settings_file(tmp_path / "list.json")


def test_every_train_option_comes_from_one_config_field():
    """The `train` options are built from config.py's fields: each one's flag sets its
    field through with_flat, with the field's default, and the command has them all."""
    from musicgen.cli import train
    from musicgen.config import RunConfig, train_options

    options = train_options()
    names = [o.name for o in options]
    assert len(names) == len(set(names)) and {"encoding", "cell", "max_minutes"} <= set(names)
    params = {p.name: p for p in train.params}
    for option in options:
        assert params[option.name].default == option.default
        assert RunConfig().with_flat({option.name: option.default}) == RunConfig()
        assert option.help

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

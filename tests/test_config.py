from pathlib import Path

import pytest

from appliance.config import ConfigError, Settings, load_settings


def test_embedded_defaults_without_file_or_env():
    s = load_settings(None, environ={})
    assert s == Settings()
    assert s.conversation.dead_air_min_s == 3.0
    assert s.channels.agent_channel == 0


def test_toml_file_and_env_override(tmp_path: Path):
    cfg = tmp_path / "a.toml"
    cfg.write_text('[conversation]\ndead_air_min_s = 5\n[channels]\nagent_channel = 1\n'
                   '[paths]\ndata_dir = "/srv/rec"\n')
    s = load_settings(cfg, environ={"APPLIANCE_CONVERSATION__DEAD_AIR_MIN_S": "7.5",
                                    "APPLIANCE_LOG__LEVEL": "DEBUG"})
    assert s.conversation.dead_air_min_s == 7.5      # env wins over the file
    assert s.channels.agent_channel == 1 and s.channels.client_channel == 0
    assert s.paths.data_dir == Path("/srv/rec")
    assert s.log.level == "DEBUG"


def test_config_path_from_environment(tmp_path: Path):
    cfg = tmp_path / "b.toml"
    cfg.write_text("[vad]\nhangover_ms = 200\n")
    assert load_settings(environ={"APPLIANCE_CONFIG": str(cfg)}).vad.hangover_ms == 200


@pytest.mark.parametrize("toml, key, value", [
    ("[vad]\nhangover_ms = -5\n", "vad.hangover_ms", "-5"),
    ("[conversation]\ndead_air_min_s = \"long\"\n", "conversation.dead_air_min_s", "'long'"),
    ("[channels]\nagent_channel = 2\n", "channels.agent_channel", "2"),
    ("[log]\nlevel = \"LOUD\"\n", "log.level", "'LOUD'"),
])
def test_invalid_value_names_key_value_and_allowed(tmp_path: Path, toml, key, value):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, environ={})
    msg = str(err.value)
    assert f"{key} = {value}" in msg
    assert str(cfg) in msg
    # says what is allowed
    assert "must be" in msg


def test_unknown_key_is_rejected(tmp_path: Path):
    cfg = tmp_path / "typo.toml"
    cfg.write_text("[vad]\nhangover = 200\n")
    with pytest.raises(ConfigError, match=r"vad.hangover: unknown setting"):
        load_settings(cfg, environ={})


def test_invalid_env_value_is_attributed_to_environment():
    with pytest.raises(ConfigError, match=r"vad.onset_ms = 'fast'.*environment"):
        load_settings(None, environ={"APPLIANCE_VAD__ONSET_MS": "fast"})


def test_inconsistent_thresholds_rejected():
    with pytest.raises(ConfigError, match="overlap_min_s must be smaller"):
        load_settings(None, environ={"APPLIANCE_CONVERSATION__OVERLAP_MIN_S": "1.0",
                                     "APPLIANCE_CONVERSATION__BACKCHANNEL_MAX_S": "0.5"})


def test_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "broken.toml"
    bad.write_text("[vad\nthreshold = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, environ={})


def test_configuration_doc_is_current():
    from appliance.config import settings_reference
    doc = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
    assert doc.read_text(encoding="utf-8").rstrip() == settings_reference().rstrip(), \
        "regenerate with: appliance config --markdown > docs/configuration.md"

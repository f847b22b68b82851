import pytest

from colsplade.config import Secret, Settings, load_settings, redact_url
from colsplade.exceptions import InvalidInputError


def test_precedence_file_env_flags(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('url = "http://file:9200"\nindex = "from-file"\nrequest_timeout = 5\nusername = "u"\n')
    env = {"COLSPLADE_URL": "http://env:9200", "COLSPLADE_PASSWORD": "s3cret"}
    s = load_settings(cfg, environ=env, index="from-flag")
    assert s.urls == ("http://env:9200",)
    assert s.index == "from-flag"
    assert s.request_timeout == 5.0
    assert s.username == "u" and s.password == Secret("s3cret")


def test_colsplade_table_and_none_overrides_ignored(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[colsplade]\nurl = ["http://a:1", "http://b:2"]\nverify_certs = false\n')
    s = load_settings(cfg, environ={}, urls=None, engine=None)
    assert s.urls == ("http://a:1", "http://b:2") and s.verify_certs is False


def test_secrets_never_printed():
    s = load_settings(environ={"COLSPLADE_URL": "https://u:pw@h:9200", "COLSPLADE_API_KEY": "KEYVALUE"})
    text = repr(s) + str(s.api_key) + " ".join(s.redacted_urls)
    assert "KEYVALUE" not in text and "pw@" not in text
    assert s.api_key.reveal() == "KEYVALUE"


@pytest.mark.parametrize(
    "env,match",
    [
        ({"COLSPLADE_URL": "ftp://x"}, "invalid engine URL"),
        ({"COLSPLADE_URL": "http://h:1", "COLSPLADE_TIMEOUT": "soon"}, "request_timeout"),
        ({"COLSPLADE_ENGINE": "solr"}, "unknown engine"),
        ({"COLSPLADE_VERIFY_CERTS": "maybe"}, "verify_certs"),
        ({"COLSPLADE_MAX_RETRIES": "-1"}, "max_retries"),
        ({"COLSPLADE_PASSWORD": "a", "COLSPLADE_API_KEY": "b"}, "not both"),
    ],
)
def test_bad_settings_are_clear_errors(env, match):
    with pytest.raises(InvalidInputError, match=match):
        load_settings(environ=env)


def test_bad_config_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("url = ")
    with pytest.raises(InvalidInputError, match="not valid TOML"):
        load_settings(bad, environ={})
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('colour = "blue"\n')
    with pytest.raises(InvalidInputError, match="unknown setting 'colour'"):
        load_settings(unknown, environ={})


def test_redact_url_keeps_user_and_port():
    assert redact_url("http://elastic:x@localhost:9200") == "http://elastic:***@localhost:9200"


def test_settings_replace_ignores_none():
    s = Settings(index="a")
    assert s.replace(index=None).index == "a"
    assert s.replace(url="http://h:1").urls == ("http://h:1",)

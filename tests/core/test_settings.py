"""Settings come from BUS_* variables, and the README documents every one of them."""

from pathlib import Path

import pytest

from bus.settings import Settings

README = Path(__file__).parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text("utf-8")
    missing = [name for name in Settings.model_fields if f"`BUS_{name.upper()}`" not in text]
    assert not missing


def test_settings_are_read_from_bus_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BUS_PREFETCH", "50")
    monkeypatch.setenv("BUS_RETRY_DELAYS", "[0.5, 2]")
    settings = Settings()
    assert (settings.prefetch, settings.retry_delays) == (50, (0.5, 2.0))


def test_the_broker_url_never_shows_its_password() -> None:
    settings = Settings(amqp_url="amqp://igate:s3cret@broker:5672/%2F")
    assert "s3cret" not in repr(settings)


def test_a_password_file_gives_the_broker_url_its_password_percent_encoded(
    tmp_path: Path,
) -> None:
    secret = tmp_path / "igate-h29.broker-password"
    secret.write_text("p@ss:w/rd\n")
    settings = Settings(amqp_url="amqps://igate-h29@rabbit:5671/%2F", amqp_password_file=secret)
    assert settings.broker_url() == "amqps://igate-h29:p%40ss%3Aw%2Frd@rabbit:5671/%2F"
    assert "p@ss" not in repr(settings)


def test_an_unreadable_password_file_is_refused_at_start_by_its_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"amqp_password_file[\s\S]*cannot read"):
        Settings(amqp_password_file=tmp_path / "missing")

import pytest

from middleware.domain.errors import Unauthorized
from middleware.entrypoints.local import parse_args
from middleware.services.auth import AuthService, ensure_admin
from middleware.settings import Settings
from tests.fakes.memory_ports import MemoryUsers


def test_ensure_admin_only_on_a_fresh_installation():
    users = MemoryUsers()
    created = ensure_admin(users, users)
    assert created is not None and created.user.role == "admin" and created.user.name == "admin"
    assert users.authenticate(created.api_key) == created.user
    assert ensure_admin(users, users) is None


def test_auth_service_messages():
    users = MemoryUsers()
    admin = ensure_admin(users, users)
    auth = AuthService(users, users)
    assert auth.authenticate(admin.api_key).name == "admin"
    with pytest.raises(Unauthorized, match="missing API key"):
        auth.authenticate(None)
    with pytest.raises(Unauthorized, match="invalid API key"):
        auth.authenticate(admin.api_key + "x")


def test_settings_explicit_beats_env_beats_default(monkeypatch, tmp_path):
    assert Settings().port == 8000
    monkeypatch.setenv("SDCLOUD_PORT", "9001")
    monkeypatch.setenv("SDCLOUD_CONTAINER_URL", "http://10.0.0.1:8080")
    monkeypatch.setenv("SDCLOUD_DATA_DIR", str(tmp_path))
    from_env = Settings()
    assert from_env.port == 9001 and from_env.container_url == "http://10.0.0.1:8080"
    assert from_env.resolved_models_dir == tmp_path / "models"
    assert from_env.admin_key_file == tmp_path / "admin-api-key"
    assert Settings(port=9002).port == 9002


def test_entrypoint_flags_override_only_what_is_given(monkeypatch, tmp_path):
    monkeypatch.setenv("SDCLOUD_HOST", "0.0.0.0")
    args = parse_args(
        ["--port", "0", "--data-dir", str(tmp_path), "--models-dir", "/m", "--container-url", "http://c:1"]
    )
    settings = Settings(**args)
    assert settings.host == "0.0.0.0"  # from the environment: no flag given
    assert settings.port == 0 and settings.data_dir == tmp_path
    assert str(settings.resolved_models_dir) == "/m" and settings.container_url == "http://c:1"


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError):
        Settings(port=70000)
    with pytest.raises(ValueError):
        Settings(worker_silence_s=0)

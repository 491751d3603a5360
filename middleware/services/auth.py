"""Who is calling: bearer API keys, and the first admin of a fresh installation."""

from __future__ import annotations

from dataclasses import dataclass

from middleware.domain.errors import Unauthorized
from middleware.ports import ApiKeyStore, User, UserStore


class AuthService:
    def __init__(self, users: UserStore, keys: ApiKeyStore) -> None:
        self._users = users
        self._keys = keys

    def authenticate(self, api_key: str | None) -> User:
        if not api_key:
            raise Unauthorized("missing API key: send the header 'Authorization: Bearer <api key>'")
        user = self._keys.authenticate(api_key)
        if user is None:
            raise Unauthorized("invalid API key")
        return user


@dataclass(frozen=True)
class NewAdmin:
    user: User
    api_key: str


def ensure_admin(users: UserStore, keys: ApiKeyStore, name: str = "admin") -> NewAdmin | None:
    """Create the admin user and its first key when the installation has no user yet.

    Returns the plaintext key once (the caller stores it where the operator can read it), or
    None when users already exist.
    """
    if users.count_users() > 0:
        return None
    user = users.create_user(name, "admin")
    _info, plaintext = keys.create_key(name, label="first admin key")
    return NewAdmin(user=user, api_key=plaintext)

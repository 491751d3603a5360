"""Users and API keys on DynamoDB (AWS mode): two tables defined in ``middleware/template.yaml``.

Keys are stored only as sha256 hashes (``api_key_format``), found by their public key id; every
create is conditional (``attribute_not_exists``), so two admins creating one user cannot both win.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from botocore.exceptions import ClientError

from middleware.adapters.api_key_format import (
    DUMMY_HASH,
    USER_NAME_RULE,
    USER_RE,
    hash_key,
    key_id_of,
    new_key,
)
from middleware.ports import ApiKeyInfo, User

USERS_HASH_KEY = "name"
KEYS_HASH_KEY = "key_id"


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoDbUserStore:
    """Implements both UserStore and ApiKeyStore."""

    def __init__(self, client: Any, users_table: str, keys_table: str) -> None:
        self._db = client
        self.users_table = users_table
        self.keys_table = keys_table

    def create_user(self, name: str, role: str) -> User:
        if not USER_RE.match(name):
            raise ValueError(USER_NAME_RULE)
        try:
            self._db.put_item(
                TableName=self.users_table,
                Item={
                    USERS_HASH_KEY: {"S": name},
                    "role": {"S": role},
                    "created_at": {"N": str(time.time_ns() // 1000)},
                },
                ConditionExpression="attribute_not_exists(#name)",
                ExpressionAttributeNames={"#name": USERS_HASH_KEY},
            )
        except ClientError as exc:
            if _conditional_failed(exc):
                raise ValueError(f"user {name!r} already exists") from None
            raise
        return User(name=name, role=role)

    def get_user(self, name: str) -> User | None:
        if not USER_RE.match(name or ""):
            return None
        item = self._db.get_item(
            TableName=self.users_table, Key={USERS_HASH_KEY: {"S": name}}, ConsistentRead=True
        ).get("Item")
        return User(name=item[USERS_HASH_KEY]["S"], role=item["role"]["S"]) if item else None

    def count_users(self) -> int:
        # Only the first-start provisioning asks (is there any user yet?): a COUNT scan of a small
        # table, never on a request path.
        total, start = 0, None
        while True:
            args: dict[str, Any] = {"TableName": self.users_table, "Select": "COUNT"}
            if start:
                args["ExclusiveStartKey"] = start
            out = self._db.scan(**args)
            total += int(out.get("Count", 0))
            start = out.get("LastEvaluatedKey")
            if not start:
                return total

    def create_key(self, user: str, label: str = "") -> tuple[ApiKeyInfo, str]:
        if self.get_user(user) is None:
            raise ValueError(f"user {user!r} does not exist")
        created = time.time_ns() // 1000
        key_id, plaintext = new_key()
        self._db.put_item(
            TableName=self.keys_table,
            Item={
                KEYS_HASH_KEY: {"S": key_id},
                "user": {"S": user},
                "label": {"S": label},
                "key_hash": {"S": hash_key(plaintext)},
                "created_at": {"N": str(created)},
            },
            # 48 random bits: a collision is next to impossible, and must never overwrite a key.
            ConditionExpression="attribute_not_exists(#key_id)",
            ExpressionAttributeNames={"#key_id": KEYS_HASH_KEY},
        )
        return ApiKeyInfo(key_id=key_id, user=user, label=label, created_at=created), plaintext

    def authenticate(self, key: str) -> User | None:
        key_id = key_id_of(key)
        item = None
        if key_id is not None:
            item = self._db.get_item(
                TableName=self.keys_table,
                Key={KEYS_HASH_KEY: {"S": key_id}},
                ProjectionExpression="key_hash, #user",
                ExpressionAttributeNames={"#user": "user"},
            ).get("Item")
        expected = item["key_hash"]["S"] if item else DUMMY_HASH
        if not hmac.compare_digest(expected, hash_key(key or "")) or item is None:
            return None
        return self.get_user(item["user"]["S"])

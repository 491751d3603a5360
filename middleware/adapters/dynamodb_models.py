"""The model library's records on DynamoDB (AWS mode): one table, ``ModelsTable`` in template.yaml.

Items by ``pk``: ``m#<id>`` a model, ``u#<id>`` an upload, ``i#<id>`` an import, and two guards
written in the same transaction as what they guard: ``n#<owner>#<type>#<name>`` (one model per
owner, type and name) and ``k#<owner>#<key>`` (an upload's Idempotency-Key). Indexes: ``by_owner``
(one owner's models, newest first), ``by_sha256`` (who uses some bytes) and ``newest`` (every
model newest first: listings of "mine and public" filter it, paging with DynamoDB's own keys).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from botocore.exceptions import ClientError

from middleware.adapters.sqlite_models import decode_cursor, encode_cursor
from middleware.domain.model_library import ModelImport, ModelRecord, Upload
from middleware.ports import StoreConflict

_KIND = "model"


def _created_sk(record: ModelRecord) -> str:
    return f"{record.created_at:012d}#{record.id}"


def _name_guard(owner: str, type: str, name: str) -> str:
    return f"n#{owner}#{type}#{name}"


def _item(record: ModelRecord) -> dict[str, Any]:
    return {
        "pk": {"S": f"m#{record.id}"},
        "kind": {"S": _KIND},
        "created_sk": {"S": _created_sk(record)},
        "model_owner": {"S": record.owner},
        "model_sha256": {"S": record.sha256},
        "name": {"S": record.name},
        "name_lower": {"S": record.name.lower()},  # the listing's q matches case-insensitively
        "type": {"S": record.type},
        "size": {"N": str(record.size)},
        "visibility": {"S": record.visibility},
        "created_at": {"N": str(record.created_at)},
        "format": {"S": record.format},
        "id": {"S": record.id},
    }


def _record(item: dict[str, Any]) -> ModelRecord:
    return ModelRecord(
        id=item["id"]["S"], name=item["name"]["S"], type=item["type"]["S"], size=int(item["size"]["N"]),
        sha256=item["model_sha256"]["S"], owner=item["model_owner"]["S"], visibility=item["visibility"]["S"],
        created_at=int(item["created_at"]["N"]), format=item["format"]["S"],
    )


def _cancelled(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("TransactionCanceledException", "ConditionalCheckFailedException")


class DynamoDbModelLibrary:
    def __init__(self, client: Any, table: str) -> None:
        self._db = client
        self.table = table

    def _get(self, pk: str) -> dict[str, Any] | None:
        return self._db.get_item(TableName=self.table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")

    # -- models ---------------------------------------------------------------------------------

    def create_model(self, record: ModelRecord) -> None:
        guard = _name_guard(record.owner, record.type, record.name)
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self.table, "Item": {"pk": {"S": guard}, "model_id": {"S": record.id}},
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Put": {"TableName": self.table, "Item": _item(record),
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                ]
            )
        except ClientError as exc:
            if _cancelled(exc):
                raise StoreConflict(f"{record.owner} already has a {record.type} named {record.name!r}") from None
            raise

    def get_model(self, model_id: str) -> ModelRecord | None:
        item = self._get(f"m#{model_id}")
        return _record(item) if item else None

    def find_model(self, owner: str, type: str, name: str) -> ModelRecord | None:
        guard = self._get(_name_guard(owner, type, name))
        return self.get_model(guard["model_id"]["S"]) if guard else None

    def models_with_sha256(self, sha256: str) -> list[ModelRecord]:
        found, start = [], None
        while True:
            args: dict[str, Any] = {
                "TableName": self.table, "IndexName": "by_sha256",
                "KeyConditionExpression": "model_sha256 = :s", "ExpressionAttributeValues": {":s": {"S": sha256}},
            }
            if start:
                args["ExclusiveStartKey"] = start
            out = self._db.query(**args)
            found += [_record(i) for i in out.get("Items", [])]
            start = out.get("LastEvaluatedKey")
            if not start:
                return found

    def find_visible(self, viewer: str, type: str, name: str) -> list[ModelRecord]:
        own = self.find_model(viewer, type, name) if viewer else None
        public, _ = self._page(None, {"type": type, "name": name, "visibility": "public"}, None, 1000, None)
        return ([own] if own else []) + [r for r in public if own is None or r.id != own.id]

    def list_models(
        self,
        viewer: str | None,
        *,
        type: str | None = None,
        visibility: str | None = None,
        owner: str | None = None,
        q: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[ModelRecord], str | None]:
        equal = {k: v for k, v in (("type", type), ("visibility", visibility)) if v is not None}
        return self._page(viewer, equal, owner, limit, cursor, q=q)

    def _page(
        self, viewer: str | None, equal: dict[str, str], owner: str | None, limit: int, cursor: str | None,
        q: str | None = None,
    ) -> tuple[list[ModelRecord], str | None]:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        filters: list[str] = []
        for n, (field, value) in enumerate(equal.items()):
            names[f"#f{n}"] = field
            values[f":f{n}"] = {"S": value}
            filters.append(f"#f{n} = :f{n}")
        if viewer is not None:
            names["#vis"] = "visibility"
            values[":viewer"], values[":public"] = {"S": viewer}, {"S": "public"}
            filters.append("(model_owner = :viewer OR #vis = :public)")
        if q:
            values[":q"] = {"S": q.lower()}
            filters.append("contains(name_lower, :q)")
        if owner is not None:
            args: dict[str, Any] = {"IndexName": "by_owner", "KeyConditionExpression": "model_owner = :owner"}
            values[":owner"] = {"S": owner}
        else:
            args = {"IndexName": "newest", "KeyConditionExpression": "kind = :kind"}
            values[":kind"] = {"S": _KIND}
        start = None
        if cursor is not None:
            created_at, model_id = decode_cursor(cursor)
            # Everything older than the cursor's item: a range condition, not a start key, so a
            # cursor stays valid after that item is deleted.
            args["KeyConditionExpression"] += " AND created_sk < :after"
            values[":after"] = {"S": f"{created_at:012d}#{model_id}"}
        if filters:
            args["FilterExpression"] = " AND ".join(filters)
        if names:
            args["ExpressionAttributeNames"] = names
        found: list[ModelRecord] = []
        while len(found) <= limit:
            page_args = {"TableName": self.table, "ScanIndexForward": False, "ExpressionAttributeValues": values,
                         "Limit": max(limit + 1, 25), **args}
            if start:
                page_args["ExclusiveStartKey"] = start
            out = self._db.query(**page_args)
            found += [_record(i) for i in out.get("Items", [])]
            start = out.get("LastEvaluatedKey")
            if not start:
                break
        if len(found) > limit:
            last = found[limit - 1]
            return found[:limit], encode_cursor(last.created_at, last.id)
        return found, None

    def set_visibility(self, model_id: str, visibility: str) -> None:
        try:
            self._db.update_item(
                TableName=self.table, Key={"pk": {"S": f"m#{model_id}"}},
                UpdateExpression="SET #v = :v", ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#v": "visibility"}, ExpressionAttributeValues={":v": {"S": visibility}},
            )
        except ClientError as exc:
            if not _cancelled(exc):
                raise

    def delete_model(self, model_id: str) -> None:
        record = self.get_model(model_id)
        if record is None:
            return
        self._db.transact_write_items(
            TransactItems=[
                {"Delete": {"TableName": self.table, "Key": {"pk": {"S": f"m#{model_id}"}}}},
                {"Delete": {"TableName": self.table,
                            "Key": {"pk": {"S": _name_guard(record.owner, record.type, record.name)}}}},
            ]
        )

    # -- uploads and imports --------------------------------------------------------------------

    def create_upload(self, upload: Upload) -> tuple[Upload, bool]:
        item = {"pk": {"S": f"u#{upload.id}"}, "status": {"S": upload.status}, "doc": {"S": json.dumps(asdict(upload))}}
        puts = [{"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}]
        if upload.idempotency_key:
            guard = {"pk": {"S": f"k#{upload.owner}#{upload.idempotency_key}"}, "upload_id": {"S": upload.id}}
            puts.append({"Put": {"TableName": self.table, "Item": guard, "ConditionExpression": "attribute_not_exists(pk)"}})
        try:
            self._db.transact_write_items(TransactItems=puts)
        except ClientError as exc:
            if not _cancelled(exc) or not upload.idempotency_key:
                raise
            guard_item = self._get(f"k#{upload.owner}#{upload.idempotency_key}")
            first = self.get_upload(guard_item["upload_id"]["S"]) if guard_item else None
            if first is None:
                raise
            return first, False
        return upload, True

    def get_upload(self, upload_id: str) -> Upload | None:
        item = self._get(f"u#{upload_id}")
        return Upload(**json.loads(item["doc"]["S"])) if item else None

    def update_upload(self, previous: Upload, new: Upload) -> bool:
        try:
            self._db.put_item(
                TableName=self.table,
                Item={"pk": {"S": f"u#{new.id}"}, "status": {"S": new.status}, "doc": {"S": json.dumps(asdict(new))}},
                ConditionExpression="#s = :prev", ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":prev": {"S": previous.status}},
            )
        except ClientError as exc:
            if _cancelled(exc):
                return False
            raise
        return True

    def create_import(self, job: ModelImport) -> None:
        self._db.put_item(
            TableName=self.table, Item={"pk": {"S": f"i#{job.id}"}, "doc": {"S": json.dumps(asdict(job))}},
            ConditionExpression="attribute_not_exists(pk)",
        )

    def get_import(self, import_id: str) -> ModelImport | None:
        item = self._get(f"i#{import_id}")
        return ModelImport(**json.loads(item["doc"]["S"])) if item else None

    def update_import(self, job: ModelImport) -> None:
        self._db.put_item(TableName=self.table, Item={"pk": {"S": f"i#{job.id}"}, "doc": {"S": json.dumps(asdict(job))}})

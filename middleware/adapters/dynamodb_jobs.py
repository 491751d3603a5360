"""JobStore on DynamoDB (AWS mode). The table is defined in ``middleware/template.yaml``.

One item per job, keyed by ``id``, plus one guard item per idempotency key. Every write is
conditional:

- ``update`` is a ``PutItem`` conditioned on the stored status and version being the previous
  ones AND the stored status being one the new status may be reached from (the transition table,
  enforced at write time like the SQLite trigger). ``ReturnValuesOnConditionCheckFailure`` hands
  back the stored item, which tells a lost race (status/version moved: False) from a forbidden
  transition over an unchanged item (IllegalTransition).
- ``create`` with an idempotency key writes the job and the guard item ``idem#<sha256(owner, key)>``
  in one transaction, each ``attribute_not_exists(id)``. A guard item rather than a GSI: GSIs are
  eventually consistent and cannot enforce uniqueness, so two concurrent retries of one request
  could both create a job; the transaction cannot, and the lookup is a strongly consistent GetItem.

Reads never scan. Sparse GSIs carry only the items a query wants (an attribute present only while
it matters): ``active_status`` (queued/running) for recovery, ``ended_status`` (terminal, keys only)
for the rare listing of finished jobs, ``running_flag`` + ``heartbeat_at`` for the silent-worker
sweep, ``cancel_flag`` + ``cancel_requested_at`` for unanswered cancels; ``by_owner`` on
``owner`` + ``created_sk`` (created_at, zero-padded, then id) serves "mine, newest first". GSIs are
eventually consistent: a job is visible in a listing a moment after its write, which every caller
tolerates (the sweeper and recovery run again; a listing is refreshed).

Nested values (summary, progress, error, result) are JSON strings written with ``ensure_ascii``,
so a lone surrogate in a prompt is stored escaped rather than failing the request's encoding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from botocore.exceptions import ClientError

from middleware.domain.errors import IllegalTransition
from middleware.domain.job import (
    ALLOWED_TRANSITIONS,
    MAX_RECORD_BYTES,
    TERMINAL_STATUSES,
    Job,
    JobError,
    JobStatus,
    Progress,
    can_transition,
)

# Index names, shared with template.yaml (a test checks they match).
INDEX_BY_OWNER = "by_owner"
INDEX_ACTIVE_BY_STATUS = "active_by_status"
INDEX_ENDED_BY_STATUS = "ended_by_status"
INDEX_RUNNING_BY_HEARTBEAT = "running_by_heartbeat"
INDEX_CANCELS_BY_TIME = "cancels_by_time"
INDEXES = {
    INDEX_BY_OWNER: ("owner", "created_sk"),
    INDEX_ACTIVE_BY_STATUS: ("active_status", "id"),
    INDEX_ENDED_BY_STATUS: ("ended_status", "id"),
    INDEX_RUNNING_BY_HEARTBEAT: ("running_flag", "heartbeat_at"),
    INDEX_CANCELS_BY_TIME: ("cancel_flag", "cancel_requested_at"),
}
HASH_KEY = "id"

_KIND_JOB = "job"
_KIND_IDEMPOTENCY = "idempotency"
_IDEM_PREFIX = "idem#"
_FLAG = "1"
# The record is a bounded summary (MAX_RECORD_BYTES of JSON); the item adds attribute names and
# the index attributes. Far below DynamoDB's 400 KB, so a long-poll read stays one cheap RCU-ish read.
MAX_ITEM_BYTES = MAX_RECORD_BYTES + 2048
_CURSOR_VERSION = "1"
_MAX_BATCH_GET = 100


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True)


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(int(value))}


def created_sort_key(created_at: int, job_id: str) -> str:
    """``by_owner``'s range key: sorts by creation time, then id (twins page deterministically)."""
    return f"{int(created_at):020d}#{job_id}"


def idempotency_item_id(owner: str, key: str) -> str:
    digest = hashlib.sha256(f"{owner}\n{key}".encode("utf-8", "surrogatepass")).hexdigest()
    return _IDEM_PREFIX + digest


def item_size(item: dict[str, dict[str, str]]) -> int:
    """An upper bound of DynamoDB's size of ``item`` (names + UTF-8 values; numbers as text)."""
    return sum(len(name.encode()) + len(next(iter(v.values())).encode()) for name, v in item.items())


def job_to_item(job: Job) -> dict[str, dict[str, str]]:
    item: dict[str, dict[str, str]] = {
        "id": _s(job.id),
        "kind": _s(_KIND_JOB),
        "owner": _s(job.owner),
        "created_sk": _s(created_sort_key(job.created_at, job.id)),
        "task": _s(job.task),
        "status": _s(job.status.value),
        "version": _n(job.version),
        "created_at": _n(job.created_at),
        "updated_at": _n(job.updated_at),
        "heartbeat_at": _n(job.heartbeat_at or job.created_at),
        "cancel_requested_at": _n(job.cancel_requested_at),
        "endpoint": _s(job.endpoint),
        "checkpoint": _s(job.checkpoint),
        "checkpoint_hash": _s(job.checkpoint_hash),
        "summary": _s(_dumps(job.summary)),
        "progress": _s(_dumps(job.progress.to_dict())),
    }
    if job.idempotency_key is not None:
        item["idempotency_key"] = _s(_dumps(job.idempotency_key))
    if job.request_hash is not None:
        item["request_hash"] = _s(job.request_hash)
    if job.error is not None:
        item["error"] = _s(_dumps(job.error.to_dict()))
    if job.result_summary is not None:
        item["result"] = _s(_dumps(job.result_summary))
    # Sparse index attributes: present only while the job belongs in that index.
    if job.status in TERMINAL_STATUSES:
        item["ended_status"] = _s(job.status.value)
    else:
        item["active_status"] = _s(job.status.value)
    if job.status is JobStatus.RUNNING:
        item["running_flag"] = _s(_FLAG)
        if job.cancel_requested_at > 0:
            item["cancel_flag"] = _s(_FLAG)
    size = item_size(item)
    if size > MAX_ITEM_BYTES:  # the domain bounds every field; this is a bug, not user input
        raise ValueError(f"job {job.id}: record of {size} bytes exceeds the {MAX_ITEM_BYTES}-byte bound")
    return item


def item_to_job(item: dict[str, dict[str, str]]) -> Job:
    def s(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value else None

    def n(name: str) -> int:
        value = item.get(name)
        return int(value["N"]) if value else 0

    error = s("error")
    result = s("result")
    key = s("idempotency_key")
    return Job(
        id=s("id") or "",
        owner=s("owner") or "",
        task=s("task") or "",
        status=JobStatus(s("status")),
        version=n("version"),
        created_at=n("created_at"),
        updated_at=n("updated_at"),
        heartbeat_at=n("heartbeat_at"),
        endpoint=s("endpoint") or "",
        checkpoint=s("checkpoint") or "",
        checkpoint_hash=s("checkpoint_hash") or "",
        idempotency_key=json.loads(key) if key is not None else None,
        request_hash=s("request_hash"),
        summary=json.loads(s("summary") or "{}"),
        progress=Progress.from_dict(json.loads(s("progress") or "{}")),
        error=JobError.from_dict(json.loads(error)) if error else None,
        result_summary=json.loads(result) if result else None,
        cancel_requested_at=n("cancel_requested_at"),
    )


def _sources_of(status: JobStatus) -> list[JobStatus]:
    """Statuses a stored job may have for ``status`` to be written over it (itself included:
    progress and cancel requests keep the status)."""
    return [status] + [src for src, targets in ALLOWED_TRANSITIONS.items() if status in targets]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class DynamoDbJobStore:
    """``client`` is a boto3 DynamoDB client; ``cursor_secret`` (optional) signs listing cursors.

    Cursors are always validated and bound to the owner they list; with a secret they are also
    HMAC-signed, so a client cannot hand-craft a start position.
    """

    def __init__(self, client: Any, table_name: str, cursor_secret: bytes | None = None) -> None:
        self._db = client
        self.table = table_name
        self._cursor_secret = cursor_secret

    # -- reads ---------------------------------------------------------------------------------

    def _get_item(self, item_id: str) -> dict[str, Any] | None:
        # Consistent: a reader that just lost a race re-reads and must see the winner.
        out = self._db.get_item(TableName=self.table, Key={HASH_KEY: _s(item_id)}, ConsistentRead=True)
        return out.get("Item")

    def get(self, job_id: str) -> Job | None:
        if not job_id or job_id.startswith(_IDEM_PREFIX):
            return None
        item = self._get_item(job_id)
        if item is None or item.get("kind", {}).get("S") != _KIND_JOB:
            return None
        return item_to_job(item)

    def find_by_idempotency_key(self, owner: str, key: str) -> Job | None:
        guard = self._get_item(idempotency_item_id(owner, key))
        if guard is None:
            return None
        return self.get(guard["job_id"]["S"])

    def _query(self, index: str, condition: str, values: dict[str, Any], limit: int, **kw: Any) -> list[dict]:
        """Up to ``limit`` items of one index query, following pages only as far as needed."""
        items: list[dict] = []
        start = kw.pop("ExclusiveStartKey", None)
        # DynamoDB refuses names the expression does not use.
        names = {f"#{a}": a for a in INDEXES[index] if f"#{a}" in condition}
        while len(items) < limit:
            args: dict[str, Any] = dict(
                TableName=self.table,
                IndexName=index,
                KeyConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                Limit=limit - len(items),
                **kw,
            )
            if start:
                args["ExclusiveStartKey"] = start
            out = self._db.query(**args)
            items += out.get("Items", [])
            start = out.get("LastEvaluatedKey")
            if not start:
                break
        return items[:limit]

    def list_by_owner(
        self, owner: str, limit: int, cursor: str | None = None
    ) -> tuple[list[Job], str | None]:
        hash_name, range_name = INDEXES[INDEX_BY_OWNER]
        kw: dict[str, Any] = {"ScanIndexForward": False}
        if cursor:
            created, last_id = self._decode_cursor(cursor, owner)
            kw["ExclusiveStartKey"] = {
                HASH_KEY: _s(last_id),
                hash_name: _s(owner),
                range_name: _s(created_sort_key(created, last_id)),
            }
        # One more than asked: tells whether a next page exists without an empty last page.
        items = self._query(
            INDEX_BY_OWNER, f"#{hash_name} = :owner", {":owner": _s(owner)}, limit + 1, **kw
        )
        jobs = [item_to_job(i) for i in items[:limit]]
        next_cursor = (
            self._encode_cursor(owner, jobs[-1].created_at, jobs[-1].id) if len(items) > limit else None
        )
        return jobs, next_cursor

    def find_stale_running(self, older_than_us: int, limit: int = 100) -> list[Job]:
        items = self._query(
            INDEX_RUNNING_BY_HEARTBEAT,
            "#running_flag = :flag AND #heartbeat_at < :before",
            {":flag": _s(_FLAG), ":before": _n(older_than_us)},
            limit,
        )
        return self._still_matching(items, lambda j: j.status is JobStatus.RUNNING and j.heartbeat_at < older_than_us)

    def find_cancels_unanswered(self, requested_before_us: int, limit: int = 100) -> list[Job]:
        items = self._query(
            INDEX_CANCELS_BY_TIME,
            "#cancel_flag = :flag AND #cancel_requested_at < :before",
            {":flag": _s(_FLAG), ":before": _n(requested_before_us)},
            limit,
        )
        return self._still_matching(
            items,
            lambda j: j.status is JobStatus.RUNNING and 0 < j.cancel_requested_at < requested_before_us,
        )

    def list_by_status(self, status: JobStatus, limit: int = 100, after_id: str | None = None) -> list[Job]:
        status = JobStatus(status)
        index = INDEX_ENDED_BY_STATUS if status in TERMINAL_STATUSES else INDEX_ACTIVE_BY_STATUS
        hash_name, range_name = INDEXES[index]
        condition = f"#{hash_name} = :status"
        values: dict[str, Any] = {":status": _s(status.value)}
        if after_id:
            condition += f" AND #{range_name} > :after"
            values[":after"] = _s(after_id)
        items = self._query(index, condition, values, limit)
        if index == INDEX_ENDED_BY_STATUS:  # keys-only index: fetch the records
            items = self._batch_get([i[HASH_KEY]["S"] for i in items])
        return [item_to_job(i) for i in items]

    def _still_matching(self, items: list[dict], keep: Any) -> list[Job]:
        # The GSI may lag the table by a moment; the caller acts on what the item says now
        # (and its write is conditional anyway).
        return [j for j in (item_to_job(i) for i in items) if keep(j)]

    def _batch_get(self, ids: list[str]) -> list[dict]:
        found: dict[str, dict] = {}
        for start in range(0, len(ids), _MAX_BATCH_GET):
            pending: dict[str, Any] = {
                self.table: {"Keys": [{HASH_KEY: _s(i)} for i in ids[start : start + _MAX_BATCH_GET]]}
            }
            while pending:
                out = self._db.batch_get_item(RequestItems=pending)
                for item in out.get("Responses", {}).get(self.table, []):
                    found[item[HASH_KEY]["S"]] = item
                pending = out.get("UnprocessedKeys") or {}
        return [found[i] for i in ids if i in found]

    # -- cursors -------------------------------------------------------------------------------

    def _mac(self, body: str) -> str:
        if self._cursor_secret is None:
            return ""
        return hmac.new(self._cursor_secret, body.encode(), hashlib.sha256).hexdigest()[:32]

    def _encode_cursor(self, owner: str, created_at: int, job_id: str) -> str:
        body = _dumps([_CURSOR_VERSION, owner, created_at, job_id])
        raw = _dumps([body, self._mac(body)])
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _decode_cursor(self, cursor: str, owner: str) -> tuple[int, str]:
        refused = ValueError("cursor is not one this server produced; start again without it")
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
            body, mac = json.loads(raw)
            version, cursor_owner, created_at, job_id = json.loads(body)
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as exc:
            raise refused from exc
        if not hmac.compare_digest(str(mac), self._mac(str(body))):
            raise refused
        valid = (
            version == _CURSOR_VERSION
            and cursor_owner == owner  # a cursor lists only the owner it was made for
            and isinstance(created_at, int)
            and not isinstance(created_at, bool)
            and created_at >= 0
            and isinstance(job_id, str)
            and 0 < len(job_id) <= 128
        )
        if not valid:
            raise refused
        return created_at, job_id

    # -- writes --------------------------------------------------------------------------------

    def create(self, job: Job) -> tuple[Job, bool]:
        if job.id.startswith(_IDEM_PREFIX):
            raise ValueError(f"job id must not start with {_IDEM_PREFIX!r}")
        item = job_to_item(job)
        if job.idempotency_key is None:
            try:
                self._db.put_item(
                    TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(id)"
                )
            except ClientError as exc:
                if _error_code(exc) == "ConditionalCheckFailedException":
                    raise ValueError(f"job id {job.id} already exists") from None
                raise
            return job, True
        guard = {
            HASH_KEY: _s(idempotency_item_id(job.owner, job.idempotency_key)),
            "kind": _s(_KIND_IDEMPOTENCY),
            "job_id": _s(job.id),
            "owner": _s(job.owner),
            "created_at": _n(job.created_at),
        }
        try:
            self._db.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": guard,
                            "ConditionExpression": "attribute_not_exists(id)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(id)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if _error_code(exc) != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                earlier_id = (reasons[0].get("Item") or {}).get("job_id", {}).get("S")
                earlier = self.get(earlier_id) if earlier_id else None
                if earlier is None:  # an older moto/SDK without the item: look it up
                    earlier = self.find_by_idempotency_key(job.owner, job.idempotency_key)
                if earlier is not None:
                    return earlier, False
            if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                raise ValueError(f"job id {job.id} already exists") from None
            raise
        return job, True

    def update(self, previous: Job, new: Job) -> bool:
        if new.id != previous.id or new.version != previous.version + 1:
            raise ValueError(f"job {new.id}: an update must write version {previous.version + 1}")
        if new.status is not previous.status and not can_transition(previous.status, new.status):
            raise IllegalTransition(new.id, previous.status.value, new.status.value)
        return self._conditional_put(previous, new)

    def _conditional_put(self, previous: Job, new: Job) -> bool:
        """The write itself, guarded by the transition table whatever the caller checked."""
        sources = _sources_of(new.status)
        values = {
            ":prev_status": _s(previous.status.value),
            ":prev_version": _n(previous.version),
            **{f":src{i}": _s(s.value) for i, s in enumerate(sources)},
        }
        try:
            self._db.put_item(
                TableName=self.table,
                Item=job_to_item(new),
                ConditionExpression=(
                    "#status = :prev_status AND #version = :prev_version "
                    f"AND #status IN ({', '.join(f':src{i}' for i in range(len(sources)))})"
                ),
                ExpressionAttributeNames={"#status": "status", "#version": "version"},
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _error_code(exc) != "ConditionalCheckFailedException":
                raise
            stored = exc.response.get("Item")
            if stored is None:
                stored = self._get_item(new.id)  # SDKs before the item was returned
            if stored and stored.get("kind", {}).get("S") == _KIND_JOB:
                now = item_to_job(stored)
                if now.status is previous.status and now.version == previous.version:
                    # Nothing moved, so the transition guard refused it (the trigger's role).
                    raise IllegalTransition(new.id, previous.status.value, new.status.value) from None
            return False  # a lost race, or no such job: the caller re-reads and decides
        return True

    def touch(self, job_id: str, at_us: int) -> bool:
        if not job_id or job_id.startswith(_IDEM_PREFIX):
            return False
        try:
            # active_status exists only while the job is queued or running.
            self._db.update_item(
                TableName=self.table,
                Key={HASH_KEY: _s(job_id)},
                UpdateExpression="SET #heartbeat_at = :at",
                ConditionExpression="attribute_exists(#active_status)",
                ExpressionAttributeNames={"#heartbeat_at": "heartbeat_at", "#active_status": "active_status"},
                ExpressionAttributeValues={":at": _n(at_us)},
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

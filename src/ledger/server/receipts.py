"""The ``ledger.v1.ReceiptService``: dry-run parsing and kept receipts."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from ledger.application.batch import RAW_FIELD
from ledger.application.commands import Command, RecordRawReceipt
from ledger.application.committer import GroupCommitter
from ledger.application.ledger import Ledger
from ledger.application.results import CommandResult
from ledger.domain.identity import check_tenant
from ledger.errors import FieldViolation, InvalidArgumentError
from ledger.privacy.subjects import decrypt_field
from ledger.protocol.events import stamp, timestamp
from ledger.receipts.ids import canonical_carrier_id
from ledger.receipts.model import CarrierProfile, ReceiptStatus
from ledger.receipts.parse import parse_receipt
from ledger.receipts.profiles import ProfileConfigError, profile_from_mapping
from ledger.server.service import _guarded
from ledger.storage.records import from_micros, to_micros
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

__all__ = ["ReceiptServicer", "apply_overrides"]

_STATUS = {
    ReceiptStatus.ENROUTE: ledger_pb2.RECEIPT_STATUS_ENROUTE,
    ReceiptStatus.ACCEPTED: ledger_pb2.RECEIPT_STATUS_ACCEPTED,
    ReceiptStatus.DELIVERED: ledger_pb2.RECEIPT_STATUS_DELIVERED,
    ReceiptStatus.FAILED: ledger_pb2.RECEIPT_STATUS_FAILED,
    ReceiptStatus.EXPIRED: ledger_pb2.RECEIPT_STATUS_EXPIRED,
    ReceiptStatus.REJECTED: ledger_pb2.RECEIPT_STATUS_REJECTED,
    ReceiptStatus.UNKNOWN: ledger_pb2.RECEIPT_STATUS_UNKNOWN,
}

_DEFAULT_LIMIT = 100
_MAX_LIMIT = 1000


def apply_overrides(
    profile: CarrierProfile, overrides: ledger_pb2.ProfileOverrides
) -> CarrierProfile:
    """Return ``profile`` with the values an operator gave in a dry-run request.

    Raises:
        InvalidArgumentError: An override has an invalid value.
    """
    table: dict[str, Any] = {}
    for name in ("timezone", "error_table", "submit_id_base", "receipt_id_base"):
        if overrides.HasField(name):
            table[name] = getattr(overrides, name)
    if overrides.HasField("confirms_delivery"):
        table["confirms_delivery"] = overrides.confirms_delivery
    if overrides.status_synonyms:
        table["status_synonyms"] = dict(overrides.status_synonyms)
    if not table:
        return profile
    try:
        changed = profile_from_mapping(profile.name, table)
    except ProfileConfigError as error:
        raise InvalidArgumentError(
            FieldViolation(f"profile.{error.field}", error.reason)
        ) from error
    return dataclasses.replace(profile, **{name: getattr(changed, name) for name in table})


def _limit(value: int) -> int:
    return min(value or _DEFAULT_LIMIT, _MAX_LIMIT)


class ReceiptServicer(ledger_pb2_grpc.ReceiptServiceServicer):
    """Operator tools for carrier receipts.

    Args:
        ledger: The ledger.
        committer: Reprocessed receipts are recorded through it.
    """

    def __init__(self, ledger: Ledger, committer: GroupCommitter) -> None:
        self.ledger = ledger
        self.committer = committer

    @_guarded
    async def NormalizeReceipt(
        self,
        request: ledger_pb2.NormalizeReceiptRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.NormalizeReceiptResponse:
        """Parse and normalize a receipt without recording anything."""
        if not request.connection:
            raise InvalidArgumentError(FieldViolation("connection", "is required"))
        profile = apply_overrides(self.ledger.config.profile(request.connection), request.profile)
        parsed = parse_receipt(
            request.format or profile.format,
            request.body,
            request.content_type,
            profile,
            dict(request.metadata),
        )
        response = ledger_pb2.NormalizeReceiptResponse(
            redactions=list(parsed.redactions), redacted_body=parsed.redacted_body
        )
        for receipt in parsed.receipts:
            item = response.receipts.add(
                status=_STATUS[receipt.status],
                final=receipt.final,
                carrier_message_id=receipt.carrier_message_id or "",
                error_code=receipt.error_code or "",
                error_table=receipt.error_table or "",
                segment=receipt.segment or 0,
                warnings=list(receipt.warnings),
            )
            if receipt.carrier_message_id:
                item.canonical_id = canonical_carrier_id(
                    receipt.carrier_message_id, profile.receipt_id_base
                )
            if receipt.permanent is not None:
                item.permanent = receipt.permanent
            if receipt.done_at is not None:
                item.done_at.CopyFrom(stamp(receipt.done_at))
        return response

    @_guarded
    async def ListUnparsedReceipts(
        self,
        request: ledger_pb2.ListUnparsedReceiptsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.ListUnparsedReceiptsResponse:
        """List receipts kept because they could not be parsed."""
        _check_tenant(request.tenant)
        rows = await asyncio.to_thread(
            self.ledger.store.list_unparsed,
            request.tenant,
            request.connection or None,
            _limit(request.limit),
        )
        keys = await asyncio.to_thread(self.ledger.keyring.keys_by_id, {r.raw_key_id for r in rows})
        response = ledger_pb2.ListUnparsedReceiptsResponse()
        for row in rows:
            key = keys.get(row.raw_key_id)
            response.receipts.add(
                receipt_id=str(row.receipt_id),
                tenant=row.tenant,
                connection=row.connection,
                format=row.format,
                content_type=row.content_type,
                received_at=timestamp(from_micros(row.received_at)),
                error=row.error,
                body=decrypt_field(key, row.raw_ciphertext, RAW_FIELD) if key else b"",
                redactions=list(row.redactions),
            )
        return response

    @_guarded
    async def ReprocessUnparsedReceipts(
        self,
        request: ledger_pb2.ReprocessUnparsedReceiptsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.ReprocessUnparsedReceiptsResponse:
        """Parse kept receipts again and record those that parse now."""
        _check_tenant(request.tenant)
        recorded, remaining = await reprocess_unparsed(
            self.ledger,
            self.committer.execute,
            request.tenant,
            request.connection or None,
            _limit(request.limit),
        )
        return ledger_pb2.ReprocessUnparsedReceiptsResponse(
            recorded=recorded, still_unparsed=remaining
        )

    @_guarded
    async def ListOrphanReceipts(
        self,
        request: ledger_pb2.ListOrphanReceiptsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> ledger_pb2.ListOrphanReceiptsResponse:
        """List receipts whose carrier id matched no message."""
        _check_tenant(request.tenant)
        min_age = timedelta(minutes=10)
        if request.HasField("min_age"):
            min_age = request.min_age.ToTimedelta()
        before = to_micros(datetime.now(UTC) - min_age)
        rows = await asyncio.to_thread(
            self.ledger.store.list_parked, request.tenant, before, _limit(request.limit)
        )
        response = ledger_pb2.ListOrphanReceiptsResponse()
        for row in rows:
            report = json.loads(row.report)
            response.receipts.add(
                receipt_id=str(row.receipt_id),
                tenant=row.tenant,
                connection=row.connection,
                canonical_id=row.canonical_id,
                status=_STATUS[ReceiptStatus(str(report["status"]).lower())],
                received_at=timestamp(from_micros(row.received_at)),
            )
        return response


async def reprocess_unparsed(
    ledger: Ledger,
    execute: Any,
    tenant: str,
    connection: str | None,
    limit: int,
) -> tuple[int, int]:
    """Record kept unparsed receipts that parse now; return (recorded, still unparsed).

    Args:
        ledger: The ledger holding the kept receipts.
        execute: Coroutine function that applies commands, such as
            :meth:`GroupCommitter.execute`.
        tenant: Tenant whose receipts to reprocess.
        connection: Only this connection's receipts, or every connection.
        limit: Most receipts to reprocess.
    """
    rows = await asyncio.to_thread(ledger.store.list_unparsed, tenant, connection, limit)
    keys = await asyncio.to_thread(ledger.keyring.keys_by_id, {r.raw_key_id for r in rows})
    commands: list[Command] = []
    for row in rows:
        key = keys.get(row.raw_key_id)
        if key is None:
            continue
        commands.append(
            RecordRawReceipt(
                tenant=row.tenant,
                connection=row.connection,
                body=decrypt_field(key, row.raw_ciphertext, RAW_FIELD),
                content_type=row.content_type,
                format=row.format,
                metadata=tuple(sorted(json.loads(row.metadata).items())),
                source=row.source,
                replaces_unparsed=row.receipt_id,
            )
        )
    outcomes = await execute(commands)
    recorded = sum(1 for o in outcomes if isinstance(o, CommandResult))
    return recorded, len(rows) - recorded


def _check_tenant(tenant: str) -> None:
    violation = check_tenant(tenant)
    if violation is not None:
        raise InvalidArgumentError(violation)

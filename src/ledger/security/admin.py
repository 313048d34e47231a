"""The ``ledger.v1.AdminService`` implementation: erasure of data subjects."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from ledger.errors import InternalError, LedgerError
from ledger.privacy.erasure import Eraser
from ledger.protocol.events import stamp
from ledger.server.service import abort_with_error
from ledger.v1 import ledger_pb2, ledger_pb2_grpc

__all__ = ["AdminServicer"]

logger = logging.getLogger(__name__)


class AdminServicer(ledger_pb2_grpc.AdminServiceServicer):
    """Runs operator actions on personal data.

    Args:
        eraser: Erases subjects of the server's ledger.
    """

    def __init__(self, eraser: Eraser) -> None:
        self.eraser = eraser

    async def EraseSubject(
        self, request: ledger_pb2.EraseSubjectRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ledger_pb2.EraseSubjectResponse:
        """Erase one subject and report what changed."""
        try:
            result = await asyncio.to_thread(self.eraser.erase, request.tenant, request.destination)
        except LedgerError as error:
            await abort_with_error(context, error)
            raise AssertionError("unreachable: abort raises") from None
        except OSError:
            logger.exception("erasure log not written", extra={"tenant": request.tenant})
            await abort_with_error(
                context,
                InternalError("the erasure log could not be written; nothing was erased"),
            )
            raise AssertionError("unreachable: abort raises") from None
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            logger.exception("EraseSubject failed", extra={"tenant": request.tenant})
            await abort_with_error(context, InternalError("internal error"))
            raise AssertionError("unreachable: abort raises") from None
        return ledger_pb2.EraseSubjectResponse(
            messages=result.messages,
            receipts_deleted=result.receipts_deleted,
            erased_at=stamp(result.erased_at),
        )

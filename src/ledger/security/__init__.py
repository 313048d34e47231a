"""Who may call the gRPC API and how much: tokens, roles, tenants, TLS and per-client limits."""

from __future__ import annotations

import logging

from ledger.security.interceptor import SecurityInterceptor
from ledger.security.limits import ClientLimiter, ClientLimits
from ledger.security.tokens import TokenFileError, TokenStore
from ledger.settings import ENV_PREFIX, ConfigurationError, Settings

__all__ = ["security_interceptor"]

logger = logging.getLogger(__name__)

_warned_open = False


def security_interceptor(settings: Settings) -> SecurityInterceptor:
    """Build the interceptor the settings describe.

    Without a tokens file every call is allowed every role; a warning says so
    once per process.

    Raises:
        ConfigurationError: The tokens file is missing or invalid.
    """
    global _warned_open
    tokens = None
    if settings.tokens_file is not None:
        try:
            tokens = TokenStore(settings.tokens_file)
        except TokenFileError as error:
            raise ConfigurationError(f"{ENV_PREFIX}TOKENS_FILE: {error}") from error
    elif not _warned_open:
        _warned_open = True
        logger.warning(
            "gRPC authentication is off: every caller has every role. Set %sTOKENS_FILE "
            "before listening beyond loopback",
            ENV_PREFIX,
            extra={"address": settings.grpc_address},
        )
    limiter = ClientLimiter(
        ClientLimits(
            rate_per_second=settings.client_rate_per_second,
            burst=settings.client_burst,
            max_in_flight=settings.client_max_in_flight,
        )
    )
    return SecurityInterceptor(tokens, limiter)

"""TLS and mutual TLS credentials of the gRPC server, from PEM files named in settings."""

from __future__ import annotations

from pathlib import Path

import grpc

from ledger.settings import ENV_PREFIX, ConfigurationError, Settings

__all__ = ["server_credentials"]


def _read(path: Path, setting: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigurationError(
            f"{ENV_PREFIX}{setting}={str(path)!r}: cannot be read ({error.strerror}); "
            "point it at a readable PEM file"
        ) from error
    if b"-----BEGIN " not in data:
        raise ConfigurationError(
            f"{ENV_PREFIX}{setting}={str(path)!r}: is not PEM (no '-----BEGIN' line)"
        )
    return data


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """Return TLS server credentials, or None when no certificate is configured.

    With ``tls_client_ca_file`` clients must present a certificate signed by
    one of its CAs (mutual TLS); expired or otherwise invalid client
    certificates fail the handshake.

    Raises:
        ConfigurationError: Only one of certificate and key is set, a client CA
            is set without them, or a file cannot be read.
    """
    cert, key, client_ca = (
        settings.tls_cert_file,
        settings.tls_key_file,
        settings.tls_client_ca_file,
    )
    if cert is None and key is None:
        if client_ca is not None:
            raise ConfigurationError(
                f"{ENV_PREFIX}TLS_CLIENT_CA_FILE is set without {ENV_PREFIX}TLS_CERT_FILE and "
                f"{ENV_PREFIX}TLS_KEY_FILE: mutual TLS needs the server's certificate too"
            )
        return None
    if cert is None or key is None:
        missing = "TLS_KEY_FILE" if key is None else "TLS_CERT_FILE"
        raise ConfigurationError(
            f"{ENV_PREFIX}{missing} is not set: TLS needs both TLS_CERT_FILE and TLS_KEY_FILE"
        )
    chain = _read(cert, "TLS_CERT_FILE")
    private_key = _read(key, "TLS_KEY_FILE")
    roots = _read(client_ca, "TLS_CLIENT_CA_FILE") if client_ca is not None else None
    return grpc.ssl_server_credentials(
        [(private_key, chain)],
        root_certificates=roots,
        require_client_auth=roots is not None,
    )

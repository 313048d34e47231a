"""Every setting of the ledger, read from the environment in one place.

Each setting is an environment variable ``SMSLEDGER_<NAME>``; a ``.env`` file in
the working directory is read too. ``docs/configuration.md`` lists them all and
a test keeps it in step with this module. Durations carry their unit in the name.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ENV_PREFIX", "ConfigurationError", "Settings", "load_settings"]

ENV_PREFIX = "SMSLEDGER_"


class ConfigurationError(ValueError):
    """A setting has an invalid value; the message names the variable and the fix."""


class Settings(BaseSettings):
    """Settings of the ledger server and its tools."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        default="",
        description=(
            "Where events are stored: sqlite:///PATH (embedded, the default under DATA_DIR) "
            "or postgresql://USER:PASSWORD@HOST:PORT/DBNAME?schema=SCHEMA."
        ),
    )
    data_dir: Path = Field(
        default=Path("data"),
        description="Folder of the embedded SQLite database and its generated master key.",
    )
    master_key: SecretStr | None = Field(
        default=None,
        description=(
            "Base64 of 32 random bytes that wraps every per-subject key. Required with "
            "PostgreSQL; with SQLite a key file is generated in DATA_DIR when unset."
        ),
    )
    grpc_address: str = Field(
        default="127.0.0.1:50051", description="Address and port the gRPC server listens on."
    )
    grpc_max_message_bytes: int = Field(
        default=4 * 1024 * 1024,
        gt=1024,
        description="Largest gRPC message accepted or sent, in bytes; larger ones are rejected.",
    )
    grpc_max_concurrent_rpcs: int = Field(
        default=2000, gt=0, description="RPCs in progress at once before new ones are rejected."
    )
    batch_max_commands: int = Field(
        default=1000, gt=0, description="Most commands in one ExecuteBatch call."
    )
    commit_max_batch: int = Field(
        default=1000, gt=0, description="Most commands the group commit puts in one transaction."
    )
    commit_max_queued: int = Field(
        default=50_000,
        gt=0,
        description="Most commands waiting for a transaction; beyond it calls get RESOURCE_EXHAUSTED.",
    )
    default_validity_seconds: int = Field(
        default=48 * 3600, gt=0, description="Validity assumed for a Submit that names none."
    )
    expiry_grace_seconds: int = Field(
        default=600,
        ge=0,
        description="Wait after validity before the ledger records an inferred expiry.",
    )
    expiry_sweep_interval_seconds: float = Field(
        default=5.0, gt=0, description="How often overdue messages are looked for."
    )
    late_receipt_window_seconds: int = Field(
        default=86_400,
        ge=0,
        description=(
            "How long after the expiry deadline a receipt may still match its carrier id; "
            "later receipts are kept as orphans."
        ),
    )
    request_id_retention_seconds: int = Field(
        default=86_400, gt=0, description="How long a request id is remembered for replays."
    )
    max_raw_payload_bytes: int = Field(
        default=65_536, gt=0, description="Largest raw receipt payload accepted, in bytes."
    )
    db_pool_size: int = Field(
        default=5, gt=0, description="PostgreSQL connections each process keeps open."
    )
    db_max_overflow: int = Field(
        default=5, ge=0, description="Extra PostgreSQL connections opened under load."
    )
    db_lock_timeout_seconds: int = Field(
        default=5,
        ge=0,
        description="How long a write waits for the events table lock before failing (0 waits forever).",
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="Time in-flight RPCs get to finish on SIGTERM."
    )
    connections_file: Path | None = Field(
        default=None,
        description=(
            "TOML file of carrier connection profiles. When set, only the connections it "
            "names are accepted."
        ),
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="Log line format of `smsledger serve`: json or text."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Lowest level logged."
    )

    @field_validator("master_key")
    @classmethod
    def _check_master_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            raw = base64.b64decode(value.get_secret_value(), validate=True)
        except (binascii.Error, ValueError) as error:
            raise ValueError("is not valid base64") from error
        if len(raw) != 32:
            raise ValueError(f"decodes to {len(raw)} bytes; 32 are needed")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in ``data_dir``."""
        return self.database_url or f"sqlite:///{self.data_dir / 'ledger.db'}"

    @property
    def is_postgres(self) -> bool:
        """True when the database is PostgreSQL."""
        return self.resolved_database_url.startswith(("postgresql:", "postgres:"))

    def master_key_bytes(self) -> bytes:
        """Return the master key, generating the embedded default's key file if needed.

        Raises:
            ConfigurationError: PostgreSQL is configured without a master key.
        """
        if self.master_key is not None:
            return base64.b64decode(self.master_key.get_secret_value())
        if self.is_postgres:
            raise ConfigurationError(
                f"{ENV_PREFIX}MASTER_KEY is not set; PostgreSQL deployments need one shared "
                "key on every node. Generate one with: "
                "python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'"
            )
        path = self.data_dir / "master.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.b64encode(secrets.token_bytes(32)).decode())
        return base64.b64decode(path.read_text().strip())


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment (and ``overrides``).

    Raises:
        ConfigurationError: A value is invalid; the message names each
            variable, its value and the expected form.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = f"{ENV_PREFIX}{str(item['loc'][0]).upper()}" if item["loc"] else ENV_PREFIX
            value = item.get("input")
            shown = "(secret)" if "MASTER_KEY" in name else repr(value)
            problems.append(f"{name}={shown}: {item['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None

"""Creating every table the ledger's processes use, once, before they start.

``smsledger migrate`` opens the ledger with table creation on (which creates
the event log and its side tables) and then runs each registered step in
registration order. Every step must be idempotent: it creates what is
missing and leaves existing tables and rows alone, because the command runs
before every deployment.

A part that owns tables registers a step with :func:`register_migration`
from the module below that :data:`STEP_MODULES` names, so that the command
imports it. The read models and the relay's position table are registered
here directly.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable

from ledger.runtime import Runtime

__all__ = ["STEP_MODULES", "Migration", "migration_steps", "register_migration", "run_migrations"]

logger = logging.getLogger(__name__)

Migration = Callable[[Runtime], None]
"""Creates one part's missing tables in the runtime's database."""

STEP_MODULES: tuple[str, ...] = ()
"""Modules imported before the steps run, so that their registrations take effect."""

_steps: dict[str, Migration] = {}


def register_migration(name: str, step: Migration) -> None:
    """Add ``step`` under ``name``; registering a name again replaces its step."""
    _steps[name] = step


def migration_steps() -> list[tuple[str, Migration]]:
    """Return the registered steps in registration order."""
    for module in STEP_MODULES:
        importlib.import_module(module)
    return list(_steps.items())


def run_migrations(runtime: Runtime) -> list[str]:
    """Run every registered step against ``runtime``'s database; return their names.

    The runtime must have been built with ``create_tables=True`` so that the
    ledger's own tables exist before the steps run.
    """
    done = []
    for name, step in migration_steps():
        logger.info("migration step %s", name, extra={"step": name})
        step(runtime)
        done.append(name)
    return done


def _read_models(runtime: Runtime) -> None:
    # Imported here: the read models import the ledger's runtime, which this
    # module sits beside.
    from projections.database import DatabaseTarget
    from projections.runner import Projector, build_projections

    target = DatabaseTarget.from_env(runtime.store.config.eventsourcing_env())
    projector = Projector(runtime.store, target, build_projections(target))
    # open() creates the position table and every read model's tables.
    projector.open()
    projector.close()


def _relay(runtime: Runtime) -> None:
    from ledger.relay.database import open_relay_database

    async def create() -> None:
        database = open_relay_database(runtime.store, runtime.settings.nats_stream)
        try:
            await database.setup()
        finally:
            await database.close()

    asyncio.run(create())


register_migration("read_models", _read_models)
register_migration("relay", _relay)

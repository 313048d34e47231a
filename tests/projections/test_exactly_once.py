"""Exactly-once effects: rebuilds equal live rows, conflicts and crashes never double count,
and commit-order gaps never make the projector skip an event.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from ledger.application.results import CommandResult
from ledger.domain.outcomes import Status
from ledger.runtime import Runtime
from projections.database import Connection
from projections.rebuild import rebuild
from projections.runner import ConflictError, read_positions
from projections.tables import POSITIONS, existing_tables
from tests.projections.helpers import projector, rows, snapshot, target_of
from tests.projections.traffic import BASE, TENANT, Plan, plans, receipt, run_rounds, submit


def project_between_rounds(runtime: Runtime, planned: list[Plan], batch_size: int) -> None:
    """Run the traffic round by round with a live projector catching up after each round."""
    built = projector(runtime, batch_size=batch_size)
    try:
        rounds = max(len(p.steps) for p in planned)
        for k in range(rounds):
            run_rounds(
                runtime.ledger,
                [
                    Plan(p.message_id, p.scenario, p.steps[k : k + 1])
                    for p in planned
                    if k < len(p.steps)
                ],
            )
            built.catch_up()
    finally:
        built.close()


def test_rebuild_equals_live_rows(runtime: Runtime) -> None:
    planned = plans(150, seed=11)
    project_between_rounds(runtime, planned, batch_size=23)
    target = target_of(runtime)
    conn = target.connect()
    try:
        live = snapshot(conn)
        assert len(live["rm_messages"]) == 150

        result = rebuild(runtime.store, target, batch_size=200, swap=False)
        assert not result.swapped
        assert snapshot(conn, shadow=True) == live

        result = rebuild(runtime.store, target, batch_size=200)
        assert result.swapped
        assert result.position == runtime.store.max_position()
        assert snapshot(conn) == live
    finally:
        conn.close()


def test_rebuild_of_one_projection_keeps_others(runtime: Runtime) -> None:
    planned = plans(40, seed=5)
    run_rounds(runtime.ledger, planned)
    built = projector(runtime)
    built.catch_up()
    target = target_of(runtime)
    conn = target.connect()
    try:
        live = snapshot(conn)
        rebuild(runtime.store, target, ["performance"], batch_size=50)
        assert snapshot(conn) == live
        # The live projector notices the swap through the generation and goes on.
        runtime.ledger.execute([submit("after-swap", "alpha", BASE)])
        built.catch_up()
        after = rows(conn, "rm_carrier_hourly")
        assert sum(r["submitted"] for r in after) == 41
    finally:
        conn.close()
        built.close()


def test_stale_projector_cannot_double_count(runtime: Runtime) -> None:
    run_rounds(runtime.ledger, plans(30, seed=2))
    first = projector(runtime, batch_size=10)
    second = projector(runtime, batch_size=10)
    try:
        first.run_batch()
        with pytest.raises(ConflictError):
            second.run_batch()
        second.catch_up()
        first.catch_up()
        target = target_of(runtime)
        conn = target.connect()
        try:
            live = snapshot(conn)
            rebuild(runtime.store, target, swap=False)
            assert snapshot(conn, shadow=True) == live
        finally:
            conn.close()
    finally:
        first.close()
        second.close()


def _rolled_back_inserts(url: str, schema: str, stop: threading.Event, count: list[int]) -> None:
    """Insert events and roll back, as failed ledger writers do: each consumes a position."""
    with psycopg.connect(url) as conn:
        while not stop.is_set():
            with conn.transaction(force_rollback=True):
                conn.execute(f'LOCK TABLE "{schema}".ledger_events IN EXCLUSIVE MODE')
                conn.execute(
                    f'INSERT INTO "{schema}".ledger_events '
                    "(originator_id, originator_version, topic, state) VALUES (%s, 1, 'x', 'x')",
                    (uuid.uuid4(),),
                )
                time.sleep(0.003)
            count[0] += 1


def test_concurrent_writers_skip_no_event(runtime: Runtime, database_url: str) -> None:
    planned = plans(240, seed=21)
    messages = [p for p in planned if p.scenario in ("delivered", "pending", "conflict")]
    run_rounds(runtime.ledger, [Plan(p.message_id, p.scenario, p.steps[:2]) for p in messages])
    built = projector(runtime, batch_size=7)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            # Every writer sends receipts to every message, so saves conflict and retry.
            for n in range(12):
                for start in range(0, len(messages), 20):
                    chunk = messages[start : start + 20]
                    at = BASE.replace(minute=n, second=offset)
                    status = Status.ENROUTE if n < 11 else Status.DELIVERED
                    commands = [receipt(p.message_id, status, at, final=n == 11) for p in chunk]
                    for outcome in runtime.ledger.execute(commands):
                        assert isinstance(outcome, CommandResult), outcome
        except BaseException as error:
            errors.append(error)

    def follow() -> None:
        try:
            while not stop.is_set():
                built.catch_up()
        except BaseException as error:
            errors.append(error)

    rolled_back = [0]
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    follower = threading.Thread(target=follow)
    extra: threading.Thread | None = None
    if database_url.startswith("postgresql"):
        base_url, schema = database_url.split("?schema=")
        extra = threading.Thread(
            target=_rolled_back_inserts, args=(base_url, schema, stop, rolled_back)
        )
        extra.start()
    follower.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    stop.set()
    follower.join(timeout=60)
    if extra is not None:
        extra.join(timeout=60)
    assert not errors, errors
    built.catch_up()
    end = runtime.store.max_position()
    assert built.position == end

    target = target_of(runtime)
    conn = target.connect()
    try:
        if target.is_postgres:
            count = conn.fetchone(f"SELECT count(*) FROM {target.events_table}")
            assert count is not None
            assert rolled_back[0] > 0
            assert end > count[0], "the test needs gaps in the log positions"
        versions = {
            r["message_id"]: r["version"]
            for r in rows(conn, "rm_messages", "WHERE tenant = %s", (TENANT,))
        }
        for plan in messages:
            message, _ = runtime.ledger.get_message(TENANT, plan.message_id)
            assert versions[plan.message_id] == message.version, plan.message_id
        live = snapshot(conn)
        rebuild(runtime.store, target, swap=False)
        assert snapshot(conn, shadow=True) == live
    finally:
        conn.close()
        built.close()


def test_worker_killed_mid_batch_resumes_exactly(runtime: Runtime, tmp_path: Path) -> None:
    run_rounds(runtime.ledger, plans(700, seed=9))
    end = runtime.store.max_position()
    settings = runtime.settings
    assert settings.master_key is not None
    env = {
        **os.environ,
        "SMSLEDGER_DATABASE_URL": settings.resolved_database_url,
        "SMSLEDGER_MASTER_KEY": settings.master_key.get_secret_value(),
        "SMSLEDGER_DATA_DIR": str(tmp_path),
        "SMSLEDGER_PROJECTIONS_BATCH_SIZE": "20",
        "SMSLEDGER_LOG_LEVEL": "WARNING",
        "SMSLEDGER_METRICS_ADDRESS": "",
    }
    target = target_of(runtime)
    conn = target.connect()
    try:
        for _ in range(2):
            log = tmp_path / "project.log"
            process = subprocess.Popen(
                [sys.executable, "-m", "ledger", "project"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=log.open("w"),
            )
            try:
                start = _position(conn)
                deadline = time.monotonic() + 60
                while _position(conn) < start + 300 and time.monotonic() < deadline:
                    time.sleep(0.01)
            finally:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
            assert process.returncode == -signal.SIGKILL, log.read_text()[-2000:]
        killed_at = _position(conn)
        assert 0 < killed_at < end, "the worker was not killed while it had work left"

        built = projector(runtime)
        built.catch_up()
        built.close()
        assert _position(conn) == end
        live = snapshot(conn)
        rebuild(runtime.store, target, swap=False)
        assert snapshot(conn, shadow=True) == live
    finally:
        conn.close()


def _position(conn: Connection) -> int:
    if POSITIONS not in existing_tables(conn):
        return 0
    stored = read_positions(conn)
    return min(
        (stored.get(n, (0, 0))[0] for n in ("messages", "performance", "latency")), default=0
    )


def test_rebuild_during_ingestion_and_live_projection(runtime: Runtime) -> None:
    run_rounds(runtime.ledger, plans(200, seed=31))
    live = projector(runtime, batch_size=50)
    live.catch_up()
    rebuilt = threading.Event()
    stop = threading.Event()
    errors: list[BaseException] = []
    written = [200]

    def ingest() -> None:
        # Keep writing until two chunks after the swap, at most 3,000 messages.
        later = [p for p in plans(3000, seed=32) if p.message_id >= "m000200"]
        after_swap = 0
        try:
            for start in range(0, len(later), 20):
                run_rounds(runtime.ledger, later[start : start + 20])
                written[0] += len(later[start : start + 20])
                if rebuilt.is_set():
                    after_swap += 1
                    if after_swap == 2:
                        return
        except BaseException as error:
            errors.append(error)

    def follow() -> None:
        try:
            while not stop.is_set():
                live.catch_up()
                time.sleep(0.005)
        except BaseException as error:
            errors.append(error)

    writer = threading.Thread(target=ingest)
    follower = threading.Thread(target=follow)
    writer.start()
    follower.start()
    target = target_of(runtime)
    try:
        result = rebuild(runtime.store, target, batch_size=100)
        rebuilt.set()
        writer.join(timeout=240)
    finally:
        stop.set()
        follower.join(timeout=60)
    assert not errors, errors
    assert result.swapped
    assert result.position < runtime.store.max_position(), "ingestion went on after the swap"
    live.catch_up()
    live.close()
    conn = target.connect()
    try:
        assert _position(conn) == runtime.store.max_position()
        after = snapshot(conn)
        assert len(after["rm_messages"]) == written[0]
        rebuild(runtime.store, target, swap=False)
        assert snapshot(conn, shadow=True) == after
    finally:
        conn.close()

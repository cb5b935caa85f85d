"""Sealing the plain text that databases from before encryption hold (migration 0007).

Runs on the migration's connection and commits after every batch (`commit`), so an interrupted
run keeps what it sealed and the next run goes on from the rows still plain (the plain column is
cleared in the same statement that sets the sealed one). Two runs at once are
safe too: a row is only updated while its plain column is still set. Uses table stubs rather
than the ORM classes, which no longer have the plain columns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from haven.storage.crypto import Sealer
from haven.storage.master_key import MasterKeys
from haven.storage.sealed import event_identity, message_identity

logger = logging.getLogger(__name__)

BATCH_SIZE = 500

_messages = sa.table(
    "messages",
    sa.column("id", sa.String),
    sa.column("user_id", sa.String),
    sa.column("session_id", sa.String),
    sa.column("role", sa.String),
    sa.column("text", sa.Text),
    sa.column("text_sealed", sa.LargeBinary),
)
_events = sa.table(
    "user_events",
    sa.column("user_id", sa.String),
    sa.column("seq", sa.BigInteger),
    sa.column("session_id", sa.String),
    sa.column("payload", sa.Text),
    sa.column("payload_sealed", sa.LargeBinary),
)
_user_keys = sa.table(
    "user_keys",
    sa.column("user_id", sa.String),
    sa.column("master_key_id", sa.String),
    sa.column("wrapped_key", sa.LargeBinary),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


class _DataKeys:
    """Each user's data key during the run: read, or created the way `UserKeys` creates it."""

    def __init__(self, conn: Connection, master: MasterKeys, commit: Callable[[], None]) -> None:
        self._conn = conn
        self._commit = commit
        self._master = master
        self._sealers: dict[str, Sealer] = {}

    def sealer(self, user_id: str) -> Sealer:
        if user_id not in self._sealers:
            self._sealers[user_id] = Sealer(self._key(user_id))
        return self._sealers[user_id]

    def _key(self, user_id: str) -> bytes:
        stored = self._stored(user_id)
        if stored is not None:
            return stored
        data_key, master_id, wrapped = self._master.new_wrapped_key(user_id)
        try:
            # A savepoint: on PostgreSQL a failed statement would otherwise end the transaction.
            with self._conn.begin_nested():
                self._conn.execute(
                    sa.insert(_user_keys).values(
                        user_id=user_id,
                        master_key_id=master_id,
                        wrapped_key=wrapped,
                        created_at=datetime.now(UTC),
                    )
                )
        except IntegrityError:
            stored = self._stored(user_id)  # another run created it first
            if stored is None:
                raise
            return stored
        # Before any value sealed under it is committed.
        self._commit()
        return data_key

    def _stored(self, user_id: str) -> bytes | None:
        row = self._conn.execute(
            sa.select(_user_keys.c.master_key_id, _user_keys.c.wrapped_key).where(
                _user_keys.c.user_id == user_id
            )
        ).one_or_none()
        if row is None:
            return None
        return self._master.unwrap(user_id, row.master_key_id, row.wrapped_key)


def seal_plaintext(
    conn: Connection, master: Callable[[], MasterKeys], commit: Callable[[], None]
) -> int:
    """Seals every message text and event frame still stored plain; returns how many rows.

    `master` is only called when there is something to seal, so an empty database migrates
    without a key. `commit` ends the transaction so far and starts the next."""
    if not _has_plain_rows(conn):
        return 0
    keys = _DataKeys(conn, master(), commit)
    sealed = 0
    while (count := _seal_messages(conn, keys)) > 0:
        sealed += count
        commit()
    while (count := _seal_events(conn, keys)) > 0:
        sealed += count
        commit()
    logger.info("sealed %d stored rows", sealed)
    return sealed


def _has_plain_rows(conn: Connection) -> bool:
    for table, column in ((_messages, _messages.c.text), (_events, _events.c.payload)):
        stmt = sa.select(sa.literal(1)).select_from(table).where(column.isnot(None)).limit(1)
        if conn.execute(stmt).first() is not None:
            return True
    return False


def _seal_messages(conn: Connection, keys: _DataKeys) -> int:
    m = _messages.c
    rows = conn.execute(
        sa.select(m.id, m.user_id, m.session_id, m.role, m.text)
        .where(m.text.isnot(None))
        .order_by(m.id)
        .limit(BATCH_SIZE)
    ).all()
    if not rows:
        return 0
    values = [
        {
            "b_id": r.id,
            "b_sealed": keys.sealer(r.user_id).seal(
                r.text, message_identity(r.id, r.user_id, r.session_id, r.role)
            ),
        }
        for r in rows
    ]
    conn.execute(
        sa.update(_messages)
        .where(m.id == sa.bindparam("b_id"), m.text.isnot(None))
        .values(text_sealed=sa.bindparam("b_sealed"), text=None),
        values,
    )
    return len(rows)


def _seal_events(conn: Connection, keys: _DataKeys) -> int:
    e = _events.c
    rows = conn.execute(
        sa.select(e.user_id, e.seq, e.session_id, e.payload)
        .where(e.payload.isnot(None))
        .order_by(e.user_id, e.seq)
        .limit(BATCH_SIZE)
    ).all()
    if not rows:
        return 0
    values = [
        {
            "b_user": r.user_id,
            "b_seq": r.seq,
            "b_sealed": keys.sealer(r.user_id).seal(
                r.payload, event_identity(r.user_id, r.seq, r.session_id)
            ),
        }
        for r in rows
    ]
    conn.execute(
        sa.update(_events)
        .where(
            e.user_id == sa.bindparam("b_user"),
            e.seq == sa.bindparam("b_seq"),
            e.payload.isnot(None),
        )
        .values(payload_sealed=sa.bindparam("b_sealed"), payload=None),
        values,
    )
    return len(rows)


def unseal_all(conn: Connection, master: MasterKeys) -> None:
    """The downgrade: writes every sealed value back to its plain column, inside the
    migration's own transaction (a failed downgrade changes nothing)."""
    m, e = _messages.c, _events.c
    data_keys: dict[str, Sealer] = {}

    def sealer(user_id: str) -> Sealer:
        if user_id not in data_keys:
            row = conn.execute(
                sa.select(_user_keys.c.master_key_id, _user_keys.c.wrapped_key).where(
                    _user_keys.c.user_id == user_id
                )
            ).one()
            data_keys[user_id] = Sealer(master.unwrap(user_id, row.master_key_id, row.wrapped_key))
        return data_keys[user_id]

    rows = conn.execute(sa.select(m.id, m.user_id, m.session_id, m.role, m.text_sealed))
    for r in rows.all():
        identity = message_identity(r.id, r.user_id, r.session_id, r.role)
        text = sealer(r.user_id).open_(r.text_sealed, identity, what=f"messages[{r.id}]")
        conn.execute(sa.update(_messages).where(m.id == r.id).values(text=text))
    rows = conn.execute(sa.select(e.user_id, e.seq, e.session_id, e.payload_sealed))
    for r in rows.all():
        identity = event_identity(r.user_id, r.seq, r.session_id)
        what = f"user_events[{r.user_id}, {r.seq}]"
        payload = sealer(r.user_id).open_(r.payload_sealed, identity, what=what)
        conn.execute(
            sa.update(_events).where(e.user_id == r.user_id, e.seq == r.seq).values(payload=payload)
        )

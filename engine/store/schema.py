"""The store's schema, once for both backends: the migrations and the dialects' differences.

``MIGRATIONS[n]`` takes a database at schema version ``n`` to ``n + 1``; both backends run the
same steps and so carry the same version numbers (SQLite keeps it in ``PRAGMA user_version``,
PostgreSQL in the one-row table ``schema_version``). A step is portable SQL with two
placeholders for what the dialects spell differently:

- ``{real}``: a float column (``REAL`` in SQLite, ``DOUBLE PRECISION`` in PostgreSQL);
- ``{rowid}``: put right after a table's last column. SQLite tables have an implicit ``rowid``
  (insertion order); PostgreSQL gets an explicit identity column of that name, so queries can
  ``ORDER BY rowid`` on both.

Adding a table (or a column, an index) to both backends is one change here: append a step
``MIGRATIONS[SCHEMA_VERSION] = (...)`` written with these placeholders and raise
``SCHEMA_VERSION`` by one. Statements the backends run take ``?`` placeholders for values
(``Dialect.sql`` turns them into PostgreSQL's ``%s``); keep ``%`` and ``?`` out of the SQL text
otherwise. ``ON CONFLICT (...) DO UPDATE SET x = excluded.x`` and ``ON CONFLICT DO NOTHING``
upserts work on both.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 5

MIGRATIONS: dict[int, tuple[str, ...]] = {
    0: (
        """CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            organization_id INTEGER NOT NULL,
            extension TEXT NOT NULL,
            nonce TEXT,
            state TEXT NOT NULL,
            published {real} NOT NULL,
            data TEXT NOT NULL{rowid}
        )""",
        "CREATE INDEX calls_user ON calls (user_id, published)",
        "CREATE INDEX calls_extension ON calls (extension, published)",
        "CREATE INDEX calls_organization ON calls (organization_id, published)",
        "CREATE INDEX calls_nonce ON calls (user_id, nonce) WHERE nonce IS NOT NULL",
        "CREATE INDEX calls_live ON calls (state) WHERE state != 'ended'",
        "CREATE INDEX calls_published ON calls (published)",
        """CREATE TABLE contacts (
            extended TEXT NOT NULL,
            contact_uri TEXT NOT NULL,
            received TEXT NOT NULL,
            expires_at {real} NOT NULL,
            call_id TEXT NOT NULL,
            cseq INTEGER NOT NULL{rowid},
            PRIMARY KEY (extended, contact_uri)
        )""",
        """CREATE TABLE tokens (
            token_hash TEXT PRIMARY KEY,
            client_id TEXT NOT NULL,
            owner_kind TEXT NOT NULL,
            owner_id INTEGER,
            expires_at {real} NOT NULL
        )""",
    ),
    1: (
        # named values the process keeps across restarts (e.g. its generated signing secret)
        "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # the last sign of life of each node: what recovery after a crash counts up to
        "CREATE TABLE heartbeats (node TEXT PRIMARY KEY, at {real} NOT NULL)",
    ),
    2: (
        # tokens are signed and carry their own claims now: the table of issued ones goes
        "DROP TABLE IF EXISTS tokens",
    ),
    3: (
        # the idempotent-create key: the first create with a user's nonce claims it, so two
        # nodes given the same nonce at once reach one call
        """CREATE TABLE nonces (
            user_id INTEGER NOT NULL,
            nonce TEXT NOT NULL,
            call_id TEXT NOT NULL,
            PRIMARY KEY (user_id, nonce)
        )""",
        # SIP digest: the highest nonce count (nc) accepted per nonce, shared by every node
        """CREATE TABLE nonce_counts (
            nonce TEXT PRIMARY KEY,
            nc INTEGER NOT NULL,
            expires_at {real} NOT NULL
        )""",
        "CREATE INDEX nonce_counts_expiry ON nonce_counts (expires_at)",
        # the nonces of calls made before: a repeated create still reaches its call
        "INSERT INTO nonces (user_id, nonce, call_id) SELECT user_id, nonce, id FROM calls"
        " WHERE nonce IS NOT NULL ON CONFLICT DO NOTHING",
    ),
    4: (
        # the cluster (docs/CLUSTER.md): the node that owns a call (runs its tasks and media),
        # the dialog state of every answered leg (what another node needs to BYE it when the
        # owner dies), the RFC 3327 Path of a binding, each node's API address beside its
        # heartbeat
        "ALTER TABLE calls ADD COLUMN node TEXT",
        "CREATE INDEX calls_node_live ON calls (node) WHERE state != 'ended'",
        """CREATE TABLE dialogs (
            sip_call_id TEXT NOT NULL,
            local_tag TEXT NOT NULL,
            phonecall TEXT NOT NULL,
            node TEXT NOT NULL,
            data TEXT NOT NULL{rowid},
            PRIMARY KEY (sip_call_id, local_tag)
        )""",
        "CREATE INDEX dialogs_phonecall ON dialogs (phonecall)",
        "ALTER TABLE contacts ADD COLUMN path TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE heartbeats ADD COLUMN api TEXT",
    ),
}


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one backend spells what the shared SQL leaves open."""

    name: str
    placeholder: str  # what stands for a value: "?" (sqlite3) or "%s" (psycopg)
    real: str
    rowid: str

    def sql(self, text: str) -> str:
        """A statement written with ``?`` placeholders, in this dialect."""
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def ddl(self, text: str) -> str:
        """A migration statement with ``{real}`` and ``{rowid}`` filled in."""
        return text.format(real=self.real, rowid=self.rowid)

    def migration(self, version: int) -> tuple[str, ...]:
        """The statements that take a database at ``version`` to ``version + 1``."""
        return tuple(self.ddl(statement) for statement in MIGRATIONS[version])


SQLITE = Dialect("sqlite", "?", "REAL", "")
POSTGRESQL = Dialect(
    "postgresql", "%s", "DOUBLE PRECISION", ", rowid BIGINT GENERATED ALWAYS AS IDENTITY"
)

"""The log refuses REPLACE, and a command's recorded answer is as fixed as its events.

SQLite's ``INSERT OR REPLACE`` (and ``REPLACE INTO``) settles a key conflict
by deleting the row in the way, and that delete fires no DELETE trigger
unless the connection turned ``recursive_triggers`` on, which a tamperer's
connection will not. A BEFORE INSERT trigger that refuses any row whose
position, event id or stream version is taken shuts that door; a plain
INSERT would have failed on those keys anyway, so appends lose nothing.

``command_results`` rows record what a command answered, so they get the
guards ``events`` has: REPLACE on SQLite, and UPDATE, DELETE and TRUNCATE
on both databases. On PostgreSQL the service role may only INSERT and
SELECT either table as well (docs/decisions.md, "Who may change the log").

Revision ID: 0005
Revises: 0004
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _sqlite_refusal(name: str, timing: str, table: str, when: str = "") -> str:
    return (f"CREATE TRIGGER {name} {timing} ON {table} {when} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")


SQLITE_GUARDS = [
    _sqlite_refusal("events_refuse_replace", "BEFORE INSERT", "events",
                    "WHEN EXISTS (SELECT 1 FROM events WHERE position = NEW.position) "
                    "OR EXISTS (SELECT 1 FROM events WHERE event_id = NEW.event_id) "
                    "OR EXISTS (SELECT 1 FROM events WHERE stream_id = NEW.stream_id "
                    "AND stream_version = NEW.stream_version)"),
    _sqlite_refusal("command_results_refuse_replace", "BEFORE INSERT", "command_results",
                    "WHEN EXISTS (SELECT 1 FROM command_results WHERE command_id = NEW.command_id)"),
    _sqlite_refusal("command_results_refuse_update", "BEFORE UPDATE", "command_results"),
    _sqlite_refusal("command_results_refuse_delete", "BEFORE DELETE", "command_results"),
]
POSTGRES_GUARDS = [
    """CREATE FUNCTION refuse_change_to_log() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$""",
    "CREATE TRIGGER command_results_refuse_change BEFORE UPDATE OR DELETE ON command_results "
    "FOR EACH ROW EXECUTE FUNCTION refuse_change_to_log()",
    "CREATE TRIGGER command_results_refuse_truncate BEFORE TRUNCATE ON command_results "
    "FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_to_log()",
]


def upgrade() -> None:
    guards = POSTGRES_GUARDS if op.get_bind().dialect.name == "postgresql" else SQLITE_GUARDS
    for statement in guards:
        op.execute(statement)

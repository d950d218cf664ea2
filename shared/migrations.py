"""Run a package's Alembic migrations against a live engine.

Every service database holds two migration histories, the store's own and the
service's projections, each in its own version table, so each can evolve
without the other.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy.engine import Engine


def upgrade(engine: Engine, script_location: Path, version_table: str, revision: str = "head") -> None:
    """Bring the schema of ``script_location`` to ``revision`` (head), holding one connection."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        config.attributes["version_table"] = version_table
        command.upgrade(config, revision)


def run_env() -> None:
    """Body of every ``env.py``: online migrations on the handed-in connection."""
    config = context.config
    context.configure(connection=config.attributes["connection"],
                      version_table=config.attributes["version_table"],
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()

"""Brings a database to the current schema: `python -m haven.storage.migrate`.

Alembic is configured here in code, so no `alembic.ini` is needed. To write a new migration
(autogenerate compares the ORM in `tables.py` with a database at head):

    from alembic import command
    from haven.storage.migrate import alembic_config
    command.revision(alembic_config(url), message="...", autogenerate=True, rev_id="0002")
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from alembic import command
from alembic.config import Config

from haven.settings import Settings
from haven.storage.database import ensure_sqlite_dir, safe_url
from haven.storage.master_key import MasterKeys

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().with_name("migrations")


def alembic_config(database_url: str, master_keys: MasterKeys | None = None) -> Config:
    """`master_keys` seal existing rows (0007); by default those the environment configures."""
    config = Config()
    # Config values pass through ConfigParser interpolation, where "%" is special.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    # Kept out of the ConfigParser altogether: a URL-encoded password contains "%".
    config.attributes["database_url"] = database_url
    if master_keys is not None:
        config.attributes["master_keys"] = master_keys
    return config


def upgrade(
    database_url: str, revision: str = "head", master_keys: MasterKeys | None = None
) -> None:
    """Migrates the database to `revision`; a no-op when it is there already."""
    ensure_sqlite_dir(database_url)
    config = alembic_config(database_url, master_keys)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, revision)
        return
    # env.py drives the async engine with asyncio.run, which refuses to nest in a running loop.
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(command.upgrade, config, revision).result()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    url = Settings().resolved_database_url
    logger.info("migrating %s to head", safe_url(url))
    upgrade(url)
    logger.info("database is at head")


if __name__ == "__main__":
    main()

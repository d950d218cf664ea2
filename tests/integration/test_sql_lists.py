"""``among``: a long list of ids as one parameter, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table, select

from shared.eventstore.engine import create_store_engine
from shared.sql_lists import among
from tests.postgres_roles import owner_url

metadata = MetaData()
people = Table("among_people", metadata, Column("person_id", String(64), primary_key=True))


def test_among_finds_exactly_the_listed_rows_however_many_and_whatever_they_hold(database_url):
    engine = create_store_engine(owner_url(database_url))  # the test's own table: as its owner
    try:
        metadata.create_all(engine)
        stored = [f"p{number:05d}" for number in range(6000)] + ["it's \"quoted\"", "逗号,和[括号]", ""]
        with engine.begin() as connection:
            connection.execute(people.insert(), [{"person_id": person} for person in stored])
        asked = stored[::2] + ["nobody", "p99999"]  # 3,000 stored, 2 not
        query = select(people.c.person_id).where(among(people.c.person_id, asked, engine.dialect.name))
        with engine.connect() as connection:
            found = set(connection.execute(query).scalars())
            nothing = connection.execute(select(people.c.person_id).where(
                among(people.c.person_id, [], engine.dialect.name))).all()
        assert found == set(stored[::2]) and nothing == []
    finally:
        engine.dispose()

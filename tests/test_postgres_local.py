"""The throwaway PostgreSQL server (deploy/postgres-local.sh) and the per-test databases on it."""

import psycopg
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select, text
from sqlalchemy.engine import make_url

from tests.conftest import fresh_database

pytestmark = pytest.mark.integration

NOTES = Table("notes", MetaData(), Column("id", Integer, primary_key=True), Column("body", String, nullable=False))


def database_names(server_url: str) -> set[str]:
    with psycopg.connect(make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)) as c:
        return {row[0] for row in c.execute("SELECT datname FROM pg_database")}


def test_a_test_database_takes_a_table_and_gives_back_its_row(postgres_database_url: str) -> None:
    url = make_url(postgres_database_url)
    assert url.drivername == "postgresql+psycopg"
    engine = create_engine(postgres_database_url)
    try:
        NOTES.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(insert(NOTES).values(id=1, body="missed visit, 07:30"))
        with engine.connect() as conn:
            assert conn.execute(select(NOTES.c.id, NOTES.c.body)).all() == [(1, "missed visit, 07:30")]
            assert conn.execute(text("SELECT current_database()")).scalar_one() == url.database
    finally:
        engine.dispose()


def test_each_test_database_is_its_own_and_is_dropped_after(postgres_url: str, postgres_database_url: str) -> None:
    mine = make_url(postgres_database_url)
    assert mine.database != make_url(postgres_url).database
    engine = create_engine(postgres_database_url)
    try:
        NOTES.metadata.create_all(engine)
    finally:
        engine.dispose()
    # A second database made the way the fixture makes them: another one, on the same server.
    with fresh_database(postgres_url) as other_url:
        other = make_url(other_url)
        assert other.database != mine.database
        assert (other.host, other.port) == (mine.host, mine.port)
        engine = create_engine(other_url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT to_regclass('notes')")).scalar_one() is None
        finally:
            engine.dispose()
        assert {mine.database, other.database} <= database_names(postgres_url)
    assert other.database not in database_names(postgres_url)

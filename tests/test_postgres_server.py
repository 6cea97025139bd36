"""The test PostgreSQL server is real and each test's database is its own."""

from __future__ import annotations

from postgres import PostgresServer

from riskstrat.serving.database import connect


def test_each_test_gets_its_own_empty_database(postgres_server: PostgresServer) -> None:
    first, second = postgres_server.create_database(), postgres_server.create_database()
    assert first != second
    with connect(first) as connection:
        connection.execute("CREATE TABLE marker (n integer)")
    with connect(second) as connection:
        found = connection.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'marker'")
        assert found.fetchone() == (0,)
        assert connection.execute("SHOW server_version_num").fetchone()[0] >= "150000"

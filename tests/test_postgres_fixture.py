"""The Postgres fixture gives a real server with password authentication."""

import psycopg2
import pytest


def test_postgres_server_is_real_and_checks_passwords(postgres_url: str) -> None:
    conn = psycopg2.connect(postgres_url)
    with conn.cursor() as cur:
        cur.execute("SELECT current_database(), version()")
        db, version = cur.fetchone()
    conn.close()
    assert db == "b24sync_test"
    assert version.startswith("PostgreSQL")
    wrong = postgres_url.replace(":b24sync-test-pw@", ":wrong@")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(wrong)

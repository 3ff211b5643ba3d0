//! The two dialects' schemas side by side: the SQLite migrations and the PostgreSQL ones must
//! build the same tables with the same columns, the same NOT NULLs and the same named indexes.
//! A migration added to one dialect and not the other fails here.

mod common;

use std::collections::BTreeSet;

use tandem_store::{PgStore, SqliteStore};

/// (table, column, not null)
type Columns = BTreeSet<(String, String, bool)>;

/// Tables only one side has, and why: SQLite keeps the server secret in a file beside the
/// database, its schema version in `PRAGMA user_version`, and its one server's rate windows in
/// memory.
const PG_ONLY: &[&str] = &["schema_version", "server_secret", "rate_charges"];

fn sqlite_facts() -> (Columns, BTreeSet<String>) {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("t.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    let c = rusqlite::Connection::open(&path).unwrap();
    let mut st = c
        .prepare(
            "SELECT m.name, p.name, p.\"notnull\" OR p.pk > 0 FROM sqlite_master m, pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
        )
        .unwrap();
    let cols = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<Columns>>()
        .unwrap();
    let mut st = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .unwrap();
    let idx = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<BTreeSet<String>>>()
        .unwrap();
    (cols, idx)
}

fn pg_facts(url: &str) -> (Columns, BTreeSet<String>) {
    drop(PgStore::open(url).unwrap());
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let cols = c
        .query(
            "SELECT table_name::text, column_name::text, is_nullable = 'NO' FROM information_schema.columns \
             WHERE table_schema = 'public'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .filter(|(t, _, _): &(String, String, bool)| !PG_ONLY.contains(&t.as_str()))
        .collect();
    // Constraint-backed indexes (primary keys, UNIQUE) are implicit on the SQLite side too.
    let idx = c
        .query(
            "SELECT indexname::text FROM pg_indexes i WHERE schemaname = 'public' AND NOT EXISTS \
             (SELECT 1 FROM pg_constraint k WHERE k.conname = i.indexname) AND tablename::text <> ALL($1)",
            &[&PG_ONLY],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    (cols, idx)
}

#[test]
fn both_dialects_build_the_same_tables_columns_and_indexes() {
    let pg = common::TestPg::start();
    let (lite_cols, lite_idx) = sqlite_facts();
    let (pg_cols, pg_idx) = pg_facts(&pg.url);
    let only = |a: &Columns, b: &Columns| a.difference(b).cloned().collect::<Vec<_>>();
    assert!(
        lite_cols == pg_cols,
        "only in SQLite: {:?}\nonly in PostgreSQL: {:?}",
        only(&lite_cols, &pg_cols),
        only(&pg_cols, &lite_cols)
    );
    assert_eq!(lite_idx, pg_idx);
    assert!(
        lite_cols.len() > 60,
        "{} columns: the query read the schema",
        lite_cols.len()
    );
}

//! Moving an embedded store into PostgreSQL (`tandem migrate-store`): every table copied row for
//! row in one PostgreSQL transaction — ids, orderings and identity counters kept — and the server
//! secret with it, so every existing API key still verifies. The target must be empty: merging two
//! stores' keys and batches is not a copy.

use std::path::Path;

use postgres::types::ToSql;
use postgres::{NoTls, Transaction};
use rusqlite::types::ValueRef;

use crate::{PgStore, Result, SqliteStore, StoreError};

/// In the order references need: projects before the keys, files and batches that name them.
const TABLES: &[&str] = &[
    "projects",
    "keys",
    "files",
    "batches",
    "batch_lines",
    "usage",
    "moderation_events",
    "responses",
];

/// Identity columns whose counters must continue after the copied rows.
const IDENTITIES: &[(&str, &str)] = &[("batches", "seq"), ("usage", "id"), ("moderation_events", "id")];

/// Rows copied per table, in copy order.
pub type Copied = Vec<(&'static str, u64)>;

/// Copies the SQLite store at `sqlite` (migrated to the latest schema first) into the PostgreSQL
/// database at `url`, with `secret` as the server secret.
pub fn copy_into_postgres(sqlite: &Path, url: &str, secret: &[u8; 32]) -> Result<Copied> {
    drop(SqliteStore::open(sqlite)?);
    let src = rusqlite::Connection::open_with_flags(sqlite, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    drop(PgStore::open(url)?);
    let mut pg = postgres::Client::connect(url, NoTls)?;
    let mut tx = pg.transaction()?;
    for t in TABLES {
        let full: bool = tx.query_one(&format!("SELECT EXISTS (SELECT 1 FROM {t})"), &[])?.get(0);
        if full {
            return Err(StoreError::Invalid(format!(
                "the PostgreSQL database already holds {t}: migrate into an empty database"
            )));
        }
    }
    let mut copied = Vec::new();
    for t in TABLES {
        copied.push((*t, copy_table(&src, &mut tx, t)?));
    }
    for (t, c) in IDENTITIES {
        tx.execute(
            &format!("SELECT setval(pg_get_serial_sequence('{t}', '{c}'), COALESCE(MAX({c}), 0) + 1, false) FROM {t}"),
            &[],
        )?;
    }
    tx.execute(
        "INSERT INTO server_secret (one, secret) VALUES (TRUE, $1) \
         ON CONFLICT (one) DO UPDATE SET secret = EXCLUDED.secret",
        &[&secret.as_slice()],
    )?;
    tx.commit()?;
    Ok(copied)
}

/// One table: PostgreSQL's column list (the same names as SQLite's: `tests/schema_facts.rs`), each
/// value converted to the PostgreSQL column's type.
fn copy_table(src: &rusqlite::Connection, tx: &mut Transaction, table: &str) -> Result<u64> {
    let cols: Vec<(String, String)> = tx
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    let list = names.join(", ");
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
    let overriding = if IDENTITIES.iter().any(|(t, _)| *t == table) {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let insert = tx.prepare(&format!(
        "INSERT INTO {table} ({list}){overriding} VALUES ({})",
        marks.join(", ")
    ))?;
    let mut st = src.prepare(&format!("SELECT {list} FROM {table}"))?;
    let mut rows = st.query([])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let values = (0..cols.len())
            .map(|i| convert(row.get_ref(i)?, &cols[i].1, table, &cols[i].0))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v.as_ref()).collect();
        tx.execute(&insert, &refs)?;
        n += 1;
    }
    Ok(n)
}

/// A SQLite value as the PostgreSQL column `ty` takes it.
fn convert(v: ValueRef, ty: &str, table: &str, col: &str) -> Result<Box<dyn ToSql + Sync>> {
    let bad = || StoreError::Corrupt(format!("{table}.{col}: a {:?} value for a {ty} column", v.data_type()));
    Ok(match (ty, v) {
        (_, ValueRef::Null) => match ty {
            "bigint" => Box::new(None::<i64>),
            "double precision" => Box::new(None::<f64>),
            "boolean" => Box::new(None::<bool>),
            "bytea" => Box::new(None::<Vec<u8>>),
            _ => Box::new(None::<String>),
        },
        ("bigint", ValueRef::Integer(i)) => Box::new(i),
        ("double precision", ValueRef::Real(f)) => Box::new(f),
        ("double precision", ValueRef::Integer(i)) => Box::new(i as f64),
        ("boolean", ValueRef::Integer(i)) => Box::new(i != 0),
        ("bytea", ValueRef::Blob(b)) => Box::new(b.to_vec()),
        ("text", ValueRef::Text(t)) => Box::new(String::from_utf8(t.to_vec()).map_err(|_| bad())?),
        _ => return Err(bad()),
    })
}

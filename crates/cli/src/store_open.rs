//! Where state lives: the embedded SQLite file in the data directory, or PostgreSQL when a
//! database URL is given (`--database-url` / `TANDEM_DATABASE_URL`), shared by every replica.
//! `serve`, `keys`, `projects` and `usage` open it the same way, so a key created from the command
//! line is the key every replica checks.

use std::path::Path;

use anyhow::{Context, Result};
use tandem_store::{KeyRing, PgStore, SqliteStore, Store};

/// The store and the key ring that digests API keys. With SQLite the secret is a file beside the
/// database; with PostgreSQL it is in the database (the first replica writes it).
pub fn open_store(data_dir: &Path, database_url: Option<&str>) -> Result<(Box<dyn Store>, KeyRing)> {
    if let Some(url) = database_url.filter(|u| !u.trim().is_empty()) {
        let store = PgStore::open(url).with_context(|| format!("connecting to {}", redact(url)))?;
        let secret = store.server_secret(&KeyRing::random_secret()?)?;
        return Ok((Box::new(store), KeyRing::from_secret(secret)));
    }
    let db = data_dir.join("tandem.sqlite");
    let store = SqliteStore::open(&db).with_context(|| format!("opening the store {}", db.display()))?;
    for note in store.migration_notes() {
        eprintln!("{note}");
    }
    let ring =
        KeyRing::open(data_dir).with_context(|| format!("reading the server secret in {}", data_dir.display()))?;
    Ok((Box::new(store), ring))
}

/// Where the state is, for the log: the URL without its password.
pub fn describe(data_dir: &Path, database_url: Option<&str>) -> String {
    match database_url.filter(|u| !u.trim().is_empty()) {
        Some(url) => redact(url),
        None => data_dir.display().to_string(),
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((cred, host)) if cred.contains(':') => {
            let user = cred.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_the_log() {
        assert_eq!(super::redact("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(super::redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact("host=h user=u"), "host=h user=u");
    }
}

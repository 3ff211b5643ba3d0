//! `tandem migrate-store --to postgres://…`: moves a data directory's SQLite store — keys,
//! projects, files' records, batches and their lines, usage, moderation events, stored responses
//! and the server secret — into an empty PostgreSQL database, in one transaction. File bytes stay
//! where they are: point every replica's `--files-dir` at that directory (or a copy of it).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::Home;

#[derive(Args)]
pub struct MigrateStoreArgs {
    /// The PostgreSQL database to fill (it must hold no tandem store yet).
    #[arg(long)]
    to: String,
    /// The data directory whose `tandem.sqlite` and `server.secret` move (env TANDEM_DATA).
    #[arg(long, env = "TANDEM_DATA")]
    data_dir: Option<PathBuf>,
}

pub fn migrate_store(home: &Home, a: MigrateStoreArgs) -> Result<()> {
    let dir = a.data_dir.unwrap_or_else(|| home.data());
    let db = dir.join("tandem.sqlite");
    if !db.exists() {
        bail!("no store at {}: nothing to migrate", db.display());
    }
    // The secret that digests the keys moves with them (created here if the store never had one:
    // then it holds no key a client could present).
    let secret = tandem_store::KeyRing::open(&dir)
        .and_then(|_| std::fs::read(dir.join("server.secret")).map_err(Into::into))
        .context("reading the server secret")?;
    let secret: [u8; 32] = secret
        .try_into()
        .map_err(|_| anyhow::anyhow!("{} is not 32 bytes", dir.join("server.secret").display()))?;
    let to = crate::store_open::redact(&a.to);
    let copied = tandem_store::copy_into_postgres(&db, &a.to, &secret)
        .with_context(|| format!("copying {} into {to}", db.display()))?;
    for (table, rows) in &copied {
        println!("{table:<18} {rows:>8} rows");
    }
    println!(
        "moved {} into {to}; serve with --database-url and --files-dir {} (file bytes stay there)",
        db.display(),
        dir.join("files").display()
    );
    Ok(())
}

//! `tandem keys …` and `tandem usage …`: the key store and the usage records of a data directory,
//! read and written directly (a running server sees changes on its next request).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tandem_store::{KeyRecord, KeyRing, KeyUpdate, NewKey, Store, UsageDim};

use crate::Home;

#[derive(Args)]
pub struct DataDir {
    /// State directory (env TANDEM_DATA; default $TANDEM_HOME/data), as `serve` takes it.
    #[arg(long, env = "TANDEM_DATA", global = true)]
    data_dir: Option<PathBuf>,
    /// Where file bytes live (default: the data directory's `files`), as `serve` takes it.
    #[arg(long, env = "TANDEM_FILES_DIR", global = true)]
    files_dir: Option<PathBuf>,
    /// PostgreSQL holding the state instead of the data directory's SQLite file, as `serve` takes it.
    #[arg(long, env = "TANDEM_DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
}

impl DataDir {
    pub fn dir(&self, home: &Home) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| home.data())
    }

    pub fn files(&self, home: &Home) -> PathBuf {
        self.files_dir.clone().unwrap_or_else(|| self.dir(home).join("files"))
    }

    pub fn open(&self, home: &Home) -> Result<(Box<dyn Store>, KeyRing)> {
        crate::store_open::open_store(&self.dir(home), self.database_url.as_deref())
    }
}

#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    cmd: KeysCmd,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Creates a key and prints it (the only time it is shown).
    Create {
        #[arg(long, default_value = "")]
        name: String,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens (prompt + completion) per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Dollars this key may spend.
        #[arg(long)]
        budget: Option<f64>,
        /// May manage keys and read usage over HTTP.
        #[arg(long)]
        admin: bool,
        /// This key's moderation policy over the server's: none, input, output or both, optionally
        /// +attacks (prompt-attack detection), optionally :block or :flag (e.g. both+attacks:block).
        #[arg(long)]
        moderation: Option<String>,
        /// The project (id or name) the key joins; default: a new project named after the key.
        #[arg(long)]
        project: Option<String>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revokes a key (by id, `key_…`); it stops working at once.
    Revoke { id: String },
    /// Changes a key's limits; 0 for --rpm/--tpm means unlimited.
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        rpm: Option<u64>,
        #[arg(long)]
        tpm: Option<u64>,
        #[arg(long, conflicts_with = "no_budget")]
        budget: Option<f64>,
        /// Removes the budget.
        #[arg(long)]
        no_budget: bool,
        /// This key's moderation policy (see create).
        #[arg(long, conflicts_with = "server_moderation")]
        moderation: Option<String>,
        /// Drops the key's moderation policy: the server's applies.
        #[arg(long)]
        server_moderation: bool,
    },
}

fn check_moderation(m: Option<&str>) -> Result<()> {
    if let Some(m) = m {
        tandem_server::ModerationPolicy::default()
            .overridden(m)
            .map_err(|e| anyhow::anyhow!("--{e}"))?;
    }
    Ok(())
}

pub fn check_budget(b: Option<f64>) -> Result<()> {
    if let Some(b) = b {
        if !(b.is_finite() && b >= 0.0) {
            bail!("--budget must be a non-negative number of dollars, got {b}");
        }
    }
    Ok(())
}

pub fn limit(v: Option<u64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn print_key(k: &KeyRecord) {
    println!(
        "{:<14} {:<29} {:<16} {:<16} {:>5} {:>7} {:>8} {:>10} {:>10} {}",
        k.id,
        k.project_id.as_deref().unwrap_or("-"),
        k.name,
        k.hint,
        if k.admin { "admin" } else { "" },
        limit(k.rpm),
        limit(k.tpm),
        k.budget.map(|b| format!("${b:.2}")).unwrap_or_else(|| "-".into()),
        format!("${:.4}", k.spent),
        if k.revoked_at.is_some() { "revoked" } else { "active" }
    );
}

pub fn keys(home: &Home, a: KeysArgs) -> Result<()> {
    let (store, ring) = a.data.open(home)?;
    let store = &*store;
    let now = tandem_server::unix_now();
    match a.cmd {
        KeysCmd::Create {
            name,
            rpm,
            tpm,
            budget,
            admin,
            moderation,
            project,
        } => {
            check_budget(budget)?;
            check_moderation(moderation.as_deref())?;
            let project_id = project
                .map(|p| crate::projects::find_project(store, &p).map(|p| p.id))
                .transpose()?;
            let spec = NewKey {
                name,
                admin,
                rpm,
                tpm,
                budget,
                moderation,
                project_id,
            };
            let (rec, key) = tandem_store::create_key(store, &ring, spec, now)?;
            eprintln!(
                "created {} in project {} — the key is shown once; store it now:",
                rec.id,
                rec.project_id.as_deref().unwrap_or("-")
            );
            println!("{key}");
        }
        KeysCmd::List { json } => {
            let keys = store.list_keys()?;
            if json {
                let v: Vec<_> = keys.iter().map(tandem_server::key_object).collect();
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!(
                    "{:<14} {:<29} {:<16} {:<16} {:>5} {:>7} {:>8} {:>10} {:>10} state",
                    "id", "project", "name", "key", "", "rpm", "tpm", "budget", "spent"
                );
                keys.iter().for_each(print_key);
            }
        }
        KeysCmd::Revoke { id } => {
            if store.key(&id)?.is_none() {
                bail!("no key {id}");
            }
            if !store.revoke_key(&id, now)? {
                eprintln!("{id} was already revoked");
            }
        }
        KeysCmd::Update {
            id,
            name,
            rpm,
            tpm,
            budget,
            no_budget,
            moderation,
            server_moderation,
        } => {
            check_budget(budget)?;
            check_moderation(moderation.as_deref())?;
            let u = KeyUpdate {
                name,
                rpm: rpm.map(|r| (r > 0).then_some(r)),
                tpm: tpm.map(|t| (t > 0).then_some(t)),
                budget: if no_budget { Some(None) } else { budget.map(Some) },
                moderation: if server_moderation {
                    Some(None)
                } else {
                    moderation.map(Some)
                },
            };
            if !store.update_key(&id, &u)? {
                bail!("no key {id}");
            }
            print_key(&store.key(&id)?.expect("just updated").0);
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct UsageArgs {
    /// First day (YYYY-MM-DD, UTC) or unix seconds; default: everything.
    #[arg(long)]
    since: Option<String>,
    /// Day after the last (YYYY-MM-DD) or unix seconds.
    #[arg(long)]
    until: Option<String>,
    /// Group by any of day, key, model, project (comma-separated).
    #[arg(long, default_value = "day,key,model")]
    by: String,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    data: DataDir,
}

fn time_arg(v: &Option<String>, what: &str) -> Result<Option<u64>> {
    match v {
        None => Ok(None),
        Some(s) => match s.parse::<u64>().ok().or_else(|| tandem_store::day_start(s)) {
            Some(t) => Ok(Some(t)),
            None => bail!("--{what}: {s:?} is neither YYYY-MM-DD nor unix seconds"),
        },
    }
}

pub fn usage(home: &Home, a: UsageArgs) -> Result<()> {
    let (store, _) = a.data.open(home)?;
    let store = &*store;
    let dims: Vec<UsageDim> = a
        .by
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            UsageDim::parse(s.trim()).with_context(|| format!("--by: {s:?} is not day, hour, key, model or project"))
        })
        .collect::<Result<_>>()?;
    let since = time_arg(&a.since, "since")?.unwrap_or(0);
    let until = time_arg(&a.until, "until")?.unwrap_or(u64::MAX);
    let rows = store.usage_summary(since, until, &dims)?;
    if a.json {
        let data = tandem_server::usage_json(&rows, &dims);
        println!("{}", serde_json::to_string(&data)?);
        return Ok(());
    }
    let head: Vec<&str> = dims.iter().map(|d| d.as_str()).collect();
    let w = 30;
    for h in &head {
        print!("{h:<w$} ");
    }
    println!(
        "{:>9} {:>12} {:>12} {:>12} {:>12}",
        "requests", "input", "cached", "output", "cost $"
    );
    for r in &rows {
        for g in &r.group {
            print!("{g:<w$} ");
        }
        let t = &r.totals;
        println!(
            "{:>9} {:>12} {:>12} {:>12} {:>12.6}",
            t.records, t.prompt_tokens, t.cached_tokens, t.completion_tokens, t.cost
        );
    }
    Ok(())
}

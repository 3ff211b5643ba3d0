//! `tandem projects …` and `tandem files …`: the tenants of a data directory and the files no key
//! can reach (objects made while the server ran open, or not attributable when projects came in),
//! read and written directly like `tandem keys`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use tandem_store::{BlobDir, FileRecord, ProjectRecord, ProjectUpdate, Store};

use crate::keys::{check_budget, limit, DataDir};
use crate::Home;

#[derive(Args)]
pub struct ProjectsArgs {
    #[command(subcommand)]
    cmd: ProjectsCmd,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Subcommand)]
enum ProjectsCmd {
    /// Creates a project and prints its id; add keys with `tandem keys create --project ID`.
    Create {
        name: String,
        /// Requests per minute over all of the project's keys.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens (prompt + completion) per minute over all of its keys.
        #[arg(long)]
        tpm: Option<u64>,
        /// Dollars the project may spend.
        #[arg(long)]
        budget: Option<f64>,
    },
    List {
        #[arg(long)]
        json: bool,
    },
    /// Changes a project's name or limits; 0 for --rpm/--tpm means unlimited.
    Update {
        project: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        rpm: Option<u64>,
        #[arg(long)]
        tpm: Option<u64>,
        #[arg(long, conflicts_with = "no_budget")]
        budget: Option<f64>,
        #[arg(long)]
        no_budget: bool,
    },
    /// Revokes the project's keys and cancels its unfinished batches. Its files and batches stay
    /// on disk, reachable by no key, until deleted (`tandem files delete`).
    Archive { project: String },
}

/// A project by id, or by name when exactly one project has it.
pub fn find_project(store: &dyn Store, p: &str) -> Result<ProjectRecord> {
    if let Some(rec) = store.project(p)? {
        return Ok(rec);
    }
    let mut named: Vec<ProjectRecord> = store.list_projects()?.into_iter().filter(|r| r.name == p).collect();
    match named.len() {
        1 => Ok(named.remove(0)),
        0 => bail!("no project {p:?} (tandem projects list)"),
        n => bail!("{n} projects are named {p:?}: give the id"),
    }
}

fn print_project(p: &ProjectRecord) {
    println!(
        "{:<29} {:<20} {:>7} {:>8} {:>10} {:>10} {}",
        p.id,
        p.name,
        limit(p.rpm),
        limit(p.tpm),
        p.budget.map(|b| format!("${b:.2}")).unwrap_or_else(|| "-".into()),
        format!("${:.4}", p.spent),
        if p.archived_at.is_some() { "archived" } else { "active" }
    );
}

pub fn projects(home: &Home, a: ProjectsArgs) -> Result<()> {
    let (store, _) = a.data.open(home)?;
    let store = &*store;
    let now = tandem_server::unix_now();
    match a.cmd {
        ProjectsCmd::Create { name, rpm, tpm, budget } => {
            check_budget(budget)?;
            if name.trim().is_empty() {
                bail!("a project needs a name");
            }
            let mut p = ProjectRecord::new(name, now)?;
            (p.rpm, p.tpm, p.budget) = (rpm.filter(|&r| r > 0), tpm.filter(|&t| t > 0), budget);
            store.insert_project(&p)?;
            eprintln!("created project {}", p.name);
            println!("{}", p.id);
        }
        ProjectsCmd::List { json } => {
            let all = store.list_projects()?;
            if json {
                let v: Vec<_> = all.iter().map(tandem_server::project_object).collect();
                println!("{}", serde_json::to_string(&v)?);
            } else {
                println!(
                    "{:<29} {:<20} {:>7} {:>8} {:>10} {:>10} state",
                    "id", "name", "rpm", "tpm", "budget", "spent"
                );
                all.iter().for_each(print_project);
            }
        }
        ProjectsCmd::Update {
            project,
            name,
            rpm,
            tpm,
            budget,
            no_budget,
        } => {
            check_budget(budget)?;
            let id = find_project(store, &project)?.id;
            let u = ProjectUpdate {
                name,
                rpm: rpm.map(|r| (r > 0).then_some(r)),
                tpm: tpm.map(|t| (t > 0).then_some(t)),
                budget: if no_budget { Some(None) } else { budget.map(Some) },
            };
            store.update_project(&id, &u)?;
            print_project(&find_project(store, &id)?);
        }
        ProjectsCmd::Archive { project } => {
            let id = find_project(store, &project)?.id;
            match store.archive_project(&id, now)? {
                Some(a) => eprintln!(
                    "archived {id}: {} keys revoked, {} unfinished batches cancelled; its files stay on disk \
                     until deleted (tandem files list --project {id})",
                    a.keys_revoked, a.batches_cancelled
                ),
                None => eprintln!("{id} was already archived"),
            }
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct FilesArgs {
    #[command(subcommand)]
    cmd: FilesCmd,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Subcommand)]
enum FilesCmd {
    /// The files of a project, or (--unassigned) the files of no project, which no key reaches.
    List {
        #[arg(long, conflicts_with = "unassigned", required_unless_present = "unassigned")]
        project: Option<String>,
        #[arg(long)]
        unassigned: bool,
    },
    /// Gives a file of no project to a project (its keys can then read it).
    Assign {
        file: String,
        #[arg(long)]
        project: String,
    },
    /// Deletes a file of any project, record and bytes (what an archived project keeps).
    Delete { file: String },
}

fn print_file(f: &FileRecord) {
    println!(
        "{:<37} {:>10} {:>12} {:<13} {}",
        f.id,
        f.bytes,
        tandem_store::utc_date(f.created_at),
        f.purpose,
        f.filename
    );
}

pub fn files(home: &Home, a: FilesArgs) -> Result<()> {
    let (store, _) = a.data.open(home)?;
    let store = &*store;
    match a.cmd {
        FilesCmd::List { project, .. } => {
            let project = project.map(|p| find_project(store, &p).map(|p| p.id)).transpose()?;
            println!(
                "{:<37} {:>10} {:>12} {:<13} filename",
                "id", "bytes", "created", "purpose"
            );
            let mut after: Option<String> = None;
            loop {
                let page = store.list_files(project.as_deref(), None, after.as_deref(), 1000, true)?;
                page.iter().for_each(print_file);
                match page.last() {
                    Some(f) if page.len() == 1000 => after = Some(f.id.clone()),
                    _ => break,
                }
            }
        }
        FilesCmd::Assign { file, project } => {
            let p = find_project(store, &project)?;
            match store.file(&file)? {
                None => bail!("no file {file}"),
                Some(f) if f.project_id.is_some() => {
                    bail!(
                        "{file} belongs to {}; only files of no project can be assigned",
                        f.project_id.unwrap_or_default()
                    )
                }
                Some(_) => {}
            }
            if !store.assign_file(&file, &p.id)? {
                bail!("{file} could not be assigned");
            }
            eprintln!("{file} now belongs to {} ({})", p.id, p.name);
        }
        FilesCmd::Delete { file } => {
            if !store.delete_file(&file)? {
                bail!("no file {file}");
            }
            // The record first: a crash between the two leaves an orphan blob, never a dangling record.
            let blobs = BlobDir::open(&a.data.files(home))?;
            blobs.remove(&file)?;
            eprintln!("deleted {file}");
        }
    }
    Ok(())
}

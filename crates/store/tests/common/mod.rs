//! The backends every store test runs against: a SQLite file in a temporary directory and a
//! throwaway PostgreSQL cluster (`initdb` + `pg_ctl` from the machine's PostgreSQL, on a free
//! loopback port, stopped and deleted when dropped).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use tandem_store::{PgStore, SqliteStore, Store};

pub enum Backend {
    Sqlite(tempfile::TempDir),
    Pg(TestPg),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Pg(_) => "postgres",
        }
    }

    /// Opens the store (again: a second `open` sees what the first wrote, as a restart would).
    pub fn open(&self) -> Box<dyn Store> {
        match self {
            Backend::Sqlite(d) => Box::new(SqliteStore::open(&d.path().join("tandem.sqlite")).unwrap()),
            Backend::Pg(pg) => Box::new(PgStore::open(&pg.url).unwrap()),
        }
    }
}

/// SQLite, then PostgreSQL.
pub fn backends() -> Vec<Backend> {
    vec![
        Backend::Sqlite(tempfile::tempdir().unwrap()),
        Backend::Pg(TestPg::start()),
    ]
}

pub struct TestPg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub url: String,
}

/// The newest installed PostgreSQL's programs (Debian keeps them out of PATH).
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed (apt-get install postgresql): the store tests run against it")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A PostgreSQL program; as root, run as the `postgres` user (initdb refuses root).
fn command(bin: &Path, prog: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(prog));
        c
    } else {
        Command::new(bin.join(prog))
    }
}

fn run(bin: &Path, prog: &str, args: &[&str]) {
    let out = command(bin, prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestPg {
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            assert!(ok.is_ok_and(|s| s.success()), "chown the cluster directory to postgres");
        }
        let data = dir.path().join("data");
        let data_s = data.to_str().unwrap();
        let sock = dir.path().to_str().unwrap();
        run(
            &bin,
            "initdb",
            &[
                "-D",
                data_s,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let opts = format!("-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off");
        let log = dir.path().join("log");
        run(
            &bin,
            "pg_ctl",
            &["-D", data_s, "-o", &opts, "-l", log.to_str().unwrap(), "-w", "start"],
        );
        Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            bin,
        }
    }
}

impl Drop for TestPg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = command(&self.bin, "pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

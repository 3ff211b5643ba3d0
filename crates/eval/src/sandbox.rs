//! Runs untrusted Python (model-written code and its tests) where it can do no harm.
//!
//! Each program gets a fresh process, set up in the child between fork and exec:
//! - its own session (so the whole process group can be killed) and its own network namespace
//!   (only a downed loopback: no sockets reach anything) and mount namespace;
//! - a private, size-capped tmpfs on `/tmp` holding its working directory `/tmp/work`, plus fresh
//!   tmpfs mounts on the other world-writable places (`/var/tmp`, `/dev/shm`, `/run/lock`): whatever
//!   it writes disappears with it, and `..` from its directory leads only into that tmpfs;
//! - limits on CPU time, address space, file size, open files and processes (RLIMIT_NPROC counts
//!   per user, so each run gets a user id of its own — no account needed — which also keeps
//!   concurrent runs, and zombies an init that does not reap leaves behind, out of each other's way);
//! - no privileges: groups dropped, then gid and uid set to that user.
//!
//! The parent feeds the program on stdin (no file of ours is ever readable to it), enforces a
//! wall-clock limit, and afterwards kills every process of the sandbox's user id — a fork that
//! left the process group is caught too. Needs root (to make namespaces and switch users); anything
//! else is refused with an error rather than run unconfined.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a sandboxed program may use.
#[derive(Debug, Clone)]
pub struct Limits {
    pub wall: Duration,
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub file_bytes: u64,
    pub processes: u64,
    /// Size of the tmpfs holding the working directory.
    pub tmpfs_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            wall: Duration::from_secs(15),
            cpu_seconds: 10,
            memory_bytes: 1 << 30,
            file_bytes: 16 << 20,
            processes: 32,
            tmpfs_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exit status 0.
    Passed,
    /// Non-zero exit or killed by a signal (CPU or memory limit, a crash).
    Failed { code: Option<i32>, signal: Option<i32> },
    /// Still running at the wall-clock limit; killed.
    TimedOut,
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub verdict: Verdict,
    /// The last few KiB of its output.
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The user id it ran as.
    pub uid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("the sandbox needs root (namespaces and a user switch); run the evaluation as root, e.g. in a container")]
    NotRoot,
    #[error("starting the sandboxed interpreter: {0}")]
    Spawn(std::io::Error),
}

/// A user id no other run uses at the same time: 200000 + a range per process + a counter.
fn next_uid() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    200_000 + (std::process::id() % 500) * 2_000 + N.fetch_add(1, Ordering::Relaxed) % 2_000
}

const KEEP: usize = 4096;

fn tail(mut b: Vec<u8>) -> String {
    if b.len() > KEEP {
        b.drain(..b.len() - KEEP);
    }
    String::from_utf8_lossy(&b).into_owned()
}

fn cstr(s: &str) -> CString {
    CString::new(s).expect("no NUL in fixed strings")
}

/// Runs `code` with `python3` in a fresh sandbox (runs may go concurrently).
pub fn run_python(code: &str, limits: &Limits) -> Result<Outcome, SandboxError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(SandboxError::NotRoot);
    }
    let uid = next_uid();
    // Everything the child needs is allocated here, before fork: between fork and exec only
    // async-signal-safe calls are allowed.
    let root = cstr("/");
    let none = cstr("none");
    let tmpfs = cstr("tmpfs");
    let tmp = cstr("/tmp");
    let work = cstr("/tmp/work");
    let tmp_opts = cstr(&format!("size={},mode=1777", limits.tmpfs_bytes));
    let small_opts = cstr("size=1m,mode=1777");
    let others = [cstr("/var/tmp"), cstr("/dev/shm"), cstr("/run/lock")];
    let rl = [
        (libc::RLIMIT_CPU, limits.cpu_seconds),
        (libc::RLIMIT_AS, limits.memory_bytes),
        (libc::RLIMIT_FSIZE, limits.file_bytes),
        (libc::RLIMIT_NOFILE, 64),
        (libc::RLIMIT_NPROC, limits.processes),
        (libc::RLIMIT_CORE, 0),
    ];
    let mut cmd = Command::new("python3");
    cmd.args(["-I", "-B", "-"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/tmp/work")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let setup = move || -> std::io::Result<()> {
        let check = |r: libc::c_int| {
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        };
        // SAFETY: plain syscalls on pointers to NUL-terminated strings that outlive the closure;
        // all are async-signal-safe, as the child of a fork requires.
        unsafe {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            check(libc::unshare(
                libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWIPC,
            ))?;
            // Mount changes stay in this namespace.
            check(libc::mount(
                none.as_ptr(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            let flags = libc::MS_NOSUID | libc::MS_NODEV;
            check(libc::mount(
                tmpfs.as_ptr(),
                tmp.as_ptr(),
                tmpfs.as_ptr(),
                flags,
                tmp_opts.as_ptr().cast(),
            ))?;
            for d in &others {
                // Not every system has all of them; those it has are covered.
                let _ = libc::mount(
                    tmpfs.as_ptr(),
                    d.as_ptr(),
                    tmpfs.as_ptr(),
                    flags,
                    small_opts.as_ptr().cast(),
                );
            }
            check(libc::mkdir(work.as_ptr(), 0o777))?;
            check(libc::chown(work.as_ptr(), uid, uid))?;
            check(libc::chdir(work.as_ptr()))?;
            for (res, v) in rl {
                let lim = libc::rlimit {
                    rlim_cur: v as libc::rlim_t,
                    rlim_max: v as libc::rlim_t,
                };
                check(libc::setrlimit(res, &lim))?;
            }
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setgid(uid))?;
            check(libc::setuid(uid))?;
        }
        Ok(())
    };
    // SAFETY: `setup` only makes async-signal-safe syscalls (see above).
    unsafe {
        cmd.pre_exec(setup);
    }
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(SandboxError::Spawn)?;
    let pid = child.id() as libc::pid_t;
    if let Some(mut stdin) = child.stdin.take() {
        // A program that exits before reading everything just closes the pipe.
        let _ = stdin.write_all(code.as_bytes());
    }
    let readers: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .map(|r| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > 4 * KEEP {
                        buf.drain(..buf.len() - KEEP);
                    }
                }
            }
            buf
        })
    })
    .collect();
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break Some(s);
        }
        if start.elapsed() >= limits.wall {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // SAFETY: signalling our own child's process group.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    let _ = child.wait();
    kill_user(uid);
    let mut out = readers.into_iter().map(|h| h.join().unwrap_or_default());
    let (stdout, stderr) = (
        tail(out.next().unwrap_or_default()),
        tail(out.next().unwrap_or_default()),
    );
    let verdict = match status {
        None => Verdict::TimedOut,
        Some(s) if s.success() => Verdict::Passed,
        Some(s) => {
            use std::os::unix::process::ExitStatusExt;
            Verdict::Failed {
                code: s.code(),
                signal: s.signal(),
            }
        }
    };
    Ok(Outcome {
        verdict,
        stdout,
        stderr,
        elapsed: start.elapsed(),
        uid,
    })
}

/// Kills every process running as `uid` (what a program forked and detached), from a helper that
/// becomes that user: `kill(-1, …)` then reaches exactly that user's processes.
fn kill_user(uid: u32) {
    let mut cmd = Command::new("true");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // SAFETY: async-signal-safe syscalls only.
    unsafe {
        cmd.pre_exec(move || {
            libc::setgroups(0, std::ptr::null());
            if libc::setgid(uid) != 0 || libc::setuid(uid) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Until none is left (kill(-1) fails with ESRCH): a process forked while one round
            // walked the process list escapes that round. Bounded, because zombies not yet reaped
            // by init still count as signalled.
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 2_000_000,
            };
            for _ in 0..100 {
                if libc::kill(-1, libc::SIGKILL) != 0 {
                    break;
                }
                libc::nanosleep(&pause, std::ptr::null_mut());
            }
            Ok(())
        });
    }
    let _ = cmd.status();
}

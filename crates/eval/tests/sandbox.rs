//! The sandbox contains what a hostile "completion" tries: writing outside its directory, opening
//! sockets, fork bombs, unbounded allocation, sleeping forever — each scored as a failure, and
//! nothing outside its directory changes. (Needs root, as the sandbox does; CI runs as root.)

use std::path::Path;
use std::time::Duration;

use tandem_eval::{run_python, Limits, SandboxError, Verdict};

fn quick() -> Limits {
    Limits {
        wall: Duration::from_secs(5),
        cpu_seconds: 3,
        ..Limits::default()
    }
}

fn run(code: &str) -> tandem_eval::Outcome {
    match run_python(code, &quick()) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// The sandbox refuses to run without root (by design); so do these tests, loudly.
fn root() -> bool {
    // SAFETY: no preconditions.
    let r = unsafe { libc::geteuid() } == 0;
    if !r {
        eprintln!("SKIPPED: the sandbox needs root; run the eval tests as root");
        assert!(matches!(run_python("pass", &quick()), Err(SandboxError::NotRoot)));
    }
    r
}

#[test]
fn a_correct_program_passes_and_a_failing_assert_fails() {
    if !root() {
        return;
    }
    let ok = run("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('fine')\n");
    assert_eq!(ok.verdict, Verdict::Passed, "{}", ok.stderr);
    assert_eq!(ok.stdout.trim(), "fine");
    let bad = run("assert 1 == 2, 'nope'\n");
    assert!(
        matches!(bad.verdict, Verdict::Failed { code: Some(1), .. }),
        "{:?}",
        bad.verdict
    );
    assert!(bad.stderr.contains("AssertionError"));
    // Its own directory is writable, and throwaway.
    let w = run("open('x.txt', 'w').write('hi')\nassert open('x.txt').read() == 'hi'\n");
    assert_eq!(w.verdict, Verdict::Passed, "{}", w.stderr);
}

#[test]
fn writes_outside_its_directory_change_nothing() {
    if !root() {
        return;
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let marker = format!("tandem-escape-{}", std::process::id());
    let targets = [
        format!("/tmp/{marker}"),
        format!("/var/tmp/{marker}"),
        format!("/dev/shm/{marker}"),
        format!("{home}/{marker}"),
        format!("/etc/{marker}"),
        format!("../{marker}"),
        format!("../../{marker}"),
        format!("../../../{marker}"),
    ];
    let code = format!(
        "for p in {targets:?}:\n    try:\n        open(p, 'w').write('x')\n        print('wrote', p)\n    except OSError:\n        pass\n"
    );
    // Writes into its own tmpfs (/tmp, /var/tmp, and `..` of its directory) succeed inside the
    // sandbox and vanish with it; none reaches the host.
    let o = run(&code);
    assert_eq!(o.verdict, Verdict::Passed, "{}", o.stderr);
    for p in [
        format!("/tmp/{marker}"),
        format!("/var/tmp/{marker}"),
        format!("/dev/shm/{marker}"),
        format!("{home}/{marker}"),
        format!("/etc/{marker}"),
        format!("/{marker}"),
    ] {
        assert!(!Path::new(&p).exists(), "{p} was written");
    }
    let root = run("open('/etc/passwd', 'a').write('x')\n");
    assert!(
        matches!(root.verdict, Verdict::Failed { .. }),
        "no privileges: {:?}",
        root.verdict
    );
}

#[test]
fn the_network_is_unreachable() {
    if !root() {
        return;
    }
    let o = run(
        "import socket\ns = socket.socket()\ns.settimeout(2)\ntry:\n    s.connect(('1.1.1.1', 80))\n    print('connected')\nexcept OSError as e:\n    print('blocked', e)\n    raise SystemExit(3)\n",
    );
    assert_eq!(
        o.verdict,
        Verdict::Failed {
            code: Some(3),
            signal: None
        },
        "{} {}",
        o.stdout,
        o.stderr
    );
    // Not even loopback: the namespace's lo is down, so nothing connects to anything.
    let l = run("import socket\ns = socket.socket()\ns.bind(('127.0.0.1', 0))\ns.listen()\nc = socket.socket()\nc.settimeout(2)\nc.connect(s.getsockname())\n");
    assert!(matches!(l.verdict, Verdict::Failed { .. }), "{:?}", l.verdict);
}

#[test]
fn sleeping_forever_is_killed_at_the_wall_clock_limit() {
    if !root() {
        return;
    }
    let o = run("import time\ntime.sleep(3600)\n");
    assert_eq!(o.verdict, Verdict::TimedOut);
    assert!(o.elapsed < Duration::from_secs(8), "{:?}", o.elapsed);
}

#[test]
fn cpu_burn_fork_bomb_and_memory_are_contained() {
    if !root() {
        return;
    }
    let cpu = run("while True:\n    pass\n");
    assert!(
        matches!(cpu.verdict, Verdict::Failed { signal: Some(_), .. } | Verdict::TimedOut),
        "{:?}",
        cpu.verdict
    );
    let mem = run("x = []\nwhile True:\n    x.append(bytearray(50 << 20))\n");
    assert!(matches!(mem.verdict, Verdict::Failed { .. }), "{:?}", mem.verdict);
    assert!(
        mem.stderr.contains("MemoryError") || mem.stderr.is_empty(),
        "{}",
        mem.stderr
    );
    let bomb = run(
        "import os, time\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.01)\n",
    );
    assert!(
        matches!(bomb.verdict, Verdict::TimedOut | Verdict::Failed { .. }),
        "{:?}",
        bomb.verdict
    );
    // Nothing of it survives: no live process of the sandbox's user is left (zombies are dead;
    // reaping orphans is init's job).
    assert_eq!(alive(bomb.uid), 0, "fork bomb processes survived");
    // A detached child (its own session) is caught too.
    let d = run("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(3600)\n");
    assert_eq!(alive(d.uid), 0, "a detached child survived");
}

/// Live (not zombie) processes of `uid`.
fn alive(uid: u32) -> usize {
    std::thread::sleep(Duration::from_millis(100));
    let out = std::process::Command::new("ps")
        .args(["-o", "stat=", "-u", &uid.to_string()])
        .output()
        .expect("ps runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().starts_with('Z'))
        .count()
}

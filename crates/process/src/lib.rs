//! Running a helper program (espeak-ng, ffmpeg, tesseract) on bytes: input written from its own thread so a
//! full output pipe cannot deadlock the writer, output read to the end, and the child killed when
//! it runs past a deadline (a wedged helper must not hold a request forever).

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a helper printed on stdout, or why it failed (its stderr, a timeout, a spawn error).
pub fn run(mut cmd: Command, input: Vec<u8>, timeout: Duration) -> Result<Vec<u8>, String> {
    let name = cmd.get_program().to_string_lossy().to_string();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {name}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        stdout.read_to_end(&mut b).map(|_| b)
    });
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} ran past {} s and was stopped", timeout.as_secs()));
            }
            Err(e) => return Err(format!("{name} failed: {e}")),
        }
    };
    let _ = writer.join();
    let out = reader.join().map_err(|_| format!("{name}: output lost"))?;
    let err = errors.join().unwrap_or_default();
    if !status.success() {
        let why = String::from_utf8_lossy(&err).trim().to_string();
        return Err(if why.is_empty() {
            format!("{name} exited with {status}")
        } else {
            why
        });
    }
    out.map_err(|e| format!("{name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_bytes_through_and_stops_a_wedged_program() {
        let out = run(Command::new("cat"), b"hello".to_vec(), Duration::from_secs(5)).unwrap();
        assert_eq!(out, b"hello");
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        let t = Instant::now();
        let err = run(sleep, Vec::new(), Duration::from_millis(200)).unwrap_err();
        assert!(err.contains("ran past"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
        let mut fails = Command::new("sh");
        fails.args(["-c", "echo broken >&2; exit 3"]);
        assert_eq!(run(fails, Vec::new(), Duration::from_secs(5)).unwrap_err(), "broken");
    }
}

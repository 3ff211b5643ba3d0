//! `tandem serve` spoken to with a raw HTTP/1.1 client: SSE framing byte for byte (`data: …` lines,
//! blank-line separators, `[DONE]` last, the right content type), and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn sse_framing_and_clean_shutdown() {
    let data = std::env::temp_dir().join(format!("tandem-sse-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "serve",
            "--port",
            "0",
            "--models",
            "mini",
            "--parallel",
            "2",
            "--ctx-size",
            "512",
            "--drain-seconds",
            "5",
        ])
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server printed its address").unwrap();
        if let Some(a) = line.strip_prefix("tandem: listening on http://") {
            break a.to_string();
        }
    };

    let body = r#"{"model":"mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":6,"temperature":0,"stream":true}"#;
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(s, "POST /v1/chat/completions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, rest) = resp.split_once("\r\n\r\n").expect("headers end");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head_l = head.to_ascii_lowercase();
    assert!(head_l.contains("content-type: text/event-stream"), "{head}");
    assert!(head_l.contains("x-request-id: req_"), "{head}");
    // Undo chunked transfer encoding if used.
    let payload = if head_l.contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    let events: Vec<&str> = payload.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert!(events.len() >= 3, "{payload}");
    for e in &events {
        assert!(
            e.starts_with("data: ") || e.starts_with(':'),
            "every event is a data line or a comment: {e:?}"
        );
        assert!(!e.contains('\n'), "one line per event: {e:?}");
    }
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let first: serde_json::Value = serde_json::from_str(&events[0]["data: ".len()..]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");

    // SIGTERM: the server stops and exits 0.
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let _ = std::fs::remove_dir_all(&data);
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").expect("chunk size line");
        let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}

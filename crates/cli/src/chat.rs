//! `tandem chat`: an interactive terminal chat with a running `tandem serve`, answers streamed as
//! they are generated. The conversation is kept between turns; `/model NAME`, `/system TEXT`,
//! `/clear`, `/history` and `/exit` steer it (also read from a pipe, one line a turn).

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};

#[derive(Args)]
pub struct ChatArgs {
    /// The server (as `tandem serve` prints it).
    #[arg(long, env = "TANDEM_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A tier name, canonical id or alias; `auto` lets the server route.
    #[arg(long, short, default_value = "mini")]
    model: String,
    /// The system prompt to start with.
    #[arg(long)]
    system: Option<String>,
    /// An API key (when the server has keys).
    #[arg(long, env = "TANDEM_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    #[arg(long, default_value_t = 1024)]
    max_tokens: usize,
    #[arg(long)]
    temperature: Option<f64>,
}

/// The conversation and its settings.
struct Session {
    model: String,
    system: Option<String>,
    /// User and assistant turns, oldest first.
    turns: Vec<Value>,
}

impl Session {
    fn messages(&self) -> Vec<Value> {
        let system = self.system.iter().map(|s| json!({"role": "system", "content": s}));
        system.chain(self.turns.iter().cloned()).collect()
    }

    /// A `/command` line: what to print, or `None` to stop.
    fn command(&mut self, line: &str) -> Option<String> {
        let (cmd, arg) = line.split_once(' ').map_or((line, ""), |(c, a)| (c, a.trim()));
        Some(match cmd {
            "/exit" | "/quit" => return None,
            "/clear" => {
                self.turns.clear();
                "(conversation cleared)".into()
            }
            "/model" if !arg.is_empty() => {
                self.model = arg.to_string();
                format!("(model: {arg})")
            }
            "/model" => format!("(model: {})", self.model),
            "/system" if arg.is_empty() => {
                self.system = None;
                "(no system prompt)".into()
            }
            "/system" => {
                self.system = Some(arg.to_string());
                "(system prompt set)".into()
            }
            "/history" => format!("({} messages)", self.turns.len()),
            _ => "commands: /model [NAME], /system [TEXT], /clear, /history, /exit".into(),
        })
    }
}

pub fn chat(a: ChatArgs) -> Result<()> {
    let (rt, client) = crate::bench_serve::load_client(Duration::from_secs(600))?;
    let mut s = Session {
        model: a.model.clone(),
        system: a.system.clone(),
        turns: Vec::new(),
    };
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    eprintln!(
        "tandem chat with {} at {} (/exit to leave, /help for commands)",
        s.model, a.url
    );
    loop {
        write!(out, "> ")?;
        out.flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('/') {
            match s.command(line) {
                Some(msg) => writeln!(out, "{msg}")?,
                None => break,
            }
            continue;
        }
        s.turns.push(json!({"role": "user", "content": line}));
        match rt.block_on(turn(&client, &a, &s, &mut out)) {
            Ok(answer) => s.turns.push(json!({"role": "assistant", "content": answer})),
            Err(e) => {
                s.turns.pop();
                writeln!(out, "(error: {e:#})")?;
            }
        }
    }
    Ok(())
}

/// One answer, printed as it streams; returns its whole text.
async fn turn(client: &reqwest::Client, a: &ChatArgs, s: &Session, out: &mut impl Write) -> Result<String> {
    let mut body = json!({"model": s.model, "messages": s.messages(), "max_tokens": a.max_tokens, "stream": true});
    if let Some(t) = a.temperature {
        body["temperature"] = json!(t);
    }
    let mut req = client.post(format!("{}/v1/chat/completions", a.url)).json(&body);
    if let Some(k) = &a.api_key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.with_context(|| format!("connecting to {}", a.url))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let msg = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(String::from))
            .unwrap_or(text);
        bail!("HTTP {status}: {msg}");
    }
    let mut answer = String::new();
    let mut events = crate::sse::Events::new(resp);
    while let Some(v) = events.next().await? {
        if let Some(m) = v["error"]["message"].as_str() {
            bail!("{m}");
        }
        let delta = &v["choices"][0]["delta"];
        let piece = delta["content"].as_str().or(delta["refusal"].as_str()).unwrap_or("");
        write!(out, "{piece}")?;
        out.flush()?;
        answer.push_str(piece);
    }
    writeln!(out)?;
    Ok(answer)
}

//! The events of a streamed OpenAI-style response (`text/event-stream`): each `data:` payload
//! parsed as JSON, `[DONE]` skipped. One reader for every client here (`tandem chat`, the load
//! generators), so they agree on how a stream is cut into events.

use std::collections::VecDeque;

use anyhow::{Context, Result};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use serde_json::Value;

pub struct Events {
    /// The body's chunks as text (each decoded on its own, as it arrives).
    stream: BoxStream<'static, reqwest::Result<String>>,
    buf: String,
    pending: VecDeque<String>,
}

impl Events {
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            stream: resp
                .bytes_stream()
                .map(|c| c.map(|b| String::from_utf8_lossy(&b).into_owned()))
                .boxed(),
            buf: String::new(),
            pending: VecDeque::new(),
        }
    }

    /// The next event's JSON, or `None` once the stream has ended. Errors: the connection failed,
    /// or a payload is not JSON.
    pub async fn next(&mut self) -> Result<Option<Value>> {
        loop {
            if let Some(data) = self.pending.pop_front() {
                return serde_json::from_str(&data)
                    .context("a chunk that is not JSON")
                    .map(Some);
            }
            let Some(chunk) = self.stream.next().await else {
                return Ok(None);
            };
            self.buf.push_str(&chunk.context("reading the stream")?);
            while let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let data = event.lines().filter_map(|l| l.strip_prefix("data: "));
                self.pending.extend(data.filter(|d| *d != "[DONE]").map(String::from));
            }
        }
    }
}

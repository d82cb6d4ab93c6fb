//! Helpers shared by the integration tests: a raw HTTP/1.1 client and a test server.

// Test support: a failed set-up step should fail the test loudly.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use domain::{FixedClock, Timestamp};
use observability::{HttpServer, Metrics, ServerConfig, StatusConfig, StatusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// 2025-11-24T02:06:40Z, a Monday.
pub(crate) const T0: i64 = 1_763_950_000_000;

/// A server on 127.0.0.1 with a fixed clock, and the handles to drive it.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) status: StatusHandle,
    pub(crate) clock: Arc<FixedClock>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    pub(crate) async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(tune: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let clock = Arc::new(FixedClock::new(Timestamp(T0)));
        let metrics = Arc::new(Metrics::new(clock.clone()).unwrap());
        let status = StatusHandle::new(StatusConfig::default(), clock.clone());
        let mut config = ServerConfig::localhost(0);
        tune(&mut config);
        let server = HttpServer::bind(config, metrics.clone(), status.clone())
            .await
            .unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            metrics,
            status,
            clock,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Signals shutdown and waits (bounded) for the server to finish.
    pub(crate) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("server did not shut down in time")
                .expect("server task panicked");
        }
    }

    pub(crate) async fn get(&self, path: &str) -> HttpReply {
        self.send(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
    }

    pub(crate) async fn send(&self, raw: &[u8]) -> HttpReply {
        send_raw(self.addr, raw).await
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub(crate) struct HttpReply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl HttpReply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
}

/// Writes `raw`, reads until the server closes (bounded by a timeout) and parses the reply.
pub(crate) async fn send_raw(addr: SocketAddr, raw: &[u8]) -> HttpReply {
    let bytes = tokio::time::timeout(Duration::from_secs(10), async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(raw).await.unwrap();
        let mut buf = Vec::new();
        // The server may close while we still write or read: what arrived is what counts.
        let _ = stream.read_to_end(&mut buf).await;
        buf
    })
    .await
    .expect("no reply within 10 s");
    parse_reply(&bytes)
        .unwrap_or_else(|| panic!("unparseable reply: {:?}", String::from_utf8_lossy(&bytes)))
}

pub(crate) fn parse_reply(bytes: &[u8]) -> Option<HttpReply> {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&bytes[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = bytes[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(HttpReply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) value: f64,
}

/// A parsed exposition: `# TYPE` and `# HELP` per family, and every sample.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    pub(crate) types: std::collections::HashMap<String, String>,
    pub(crate) help: std::collections::HashMap<String, String>,
    pub(crate) samples: Vec<Sample>,
}

impl Exposition {
    /// The value of `name` whose labels include every pair of `labels`; panics on ambiguity.
    pub(crate) fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} matches {found:?}");
        found.first().map(|s| s.value)
    }
}

/// Parses the Prometheus text exposition format (0.0.4), refusing anything malformed.
pub(crate) fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        let err = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| err("TYPE without a type"))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(err("unknown type"));
            }
            if out.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                return Err(err("TYPE given twice"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.help.insert(name.to_owned(), help.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value"))?;
        let name = &line[..name_end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(err("bad metric name"));
        }
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(after) = rest.strip_prefix('{') {
            let (parsed, tail) = parse_labels(after).map_err(|why| err(&why))?;
            labels = parsed;
            rest = tail;
        }
        let mut parts = rest.split_whitespace();
        let value_text = parts.next().ok_or_else(|| err("no value"))?;
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            v => v.parse::<f64>().map_err(|_| err("bad value"))?,
        };
        if let Some(ts) = parts.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp"))?;
        }
        if parts.next().is_some() {
            return Err(err("trailing text"));
        }
        out.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(out)
}

/// Parses `k="v",k2="v2"}` (after the opening brace); returns the labels and the text after `}`.
type Labels = Vec<(String, String)>;

fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        if let Some(tail) = s.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let (key, after_key) = s.split_once('=').ok_or("label without =")?;
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("bad label name {key:?}"));
        }
        let mut chars = after_key
            .strip_prefix('"')
            .ok_or("label value not quoted")?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    'n' => value.push('\n'),
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    other => return Err(format!("bad escape \\{other}")),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        // Skip the value's characters plus the opening quote and the closing one.
        s = &after_key[end + 2..];
        if let Some(next) = s.strip_prefix(',') {
            s = next;
        } else if !s.starts_with('}') {
            return Err("expected , or } after a label".to_owned());
        }
    }
}

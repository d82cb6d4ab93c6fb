//! The built binary's `sentiment` command against local HTTPS mocks of Perplexity's Agent API,
//! Nitter RSS and the X API (issue 14, report 8): `PERPLEXITY_BASE_URL`, `X_API_BASE_URL`,
//! `NITTER_INSTANCES` point at one wiremock server behind a TLS terminator on loopback whose
//! certificate chains to a private CA given with `SENTIMENT_CA_FILE`. Checked: the fallback order,
//! the retries (429 with Retry-After, 5xx), a malformed answer, and that no key is ever printed.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/cli.rs"]
mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const PPLX_KEY: &str = "pplx-E2E-KEY-4b9d1c";
const X_TOKEN: &str = "x-E2E-TOKEN-77aa02";
/// Longest one run of the binary may take before the test fails.
const RUN_DEADLINE: Duration = Duration::from_secs(120);

const PPLX_PATH: &str = "/pplx/v1/responses";
const NITTER_PATH: &str = "/search/rss";
const X_PATH: &str = "/xapi/2/tweets/search/recent";

/// One wiremock server behind a TLS terminator, and the CA that signed the terminator's
/// certificate.
struct Mocks {
    rt: tokio::runtime::Runtime,
    server: MockServer,
    front: SocketAddr,
    ca: PathBuf,
    dir: tempfile::TempDir,
    stop: watch::Sender<bool>,
}

impl Mocks {
    fn start() -> Mocks {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let certs = ctrader_sim::generate_certificates(&dir.path().join("certs")).unwrap();
        let (stop, stopped) = watch::channel(false);
        let (server, front) = rt.block_on(async {
            let server = MockServer::start().await;
            let front = tls_front(*server.address(), &certs, stopped).await;
            (server, front)
        });
        Mocks {
            rt,
            server,
            front,
            ca: certs.ca_cert,
            dir,
            stop,
        }
    }

    fn mount(&self, mock: Mock) {
        self.rt.block_on(mock.mount(&self.server));
    }

    /// The environment of a bot using all three sources through the mocks.
    fn env(&self, with_ca: bool) -> Vec<(String, String)> {
        let base = format!("https://127.0.0.1:{}", self.front.port());
        let mut env = vec![
            ("PERPLEXITY_API_KEY", PPLX_KEY.to_owned()),
            ("X_BEARER_TOKEN", X_TOKEN.to_owned()),
            ("SENTIMENT_SOURCES", "perplexity,nitter,x".to_owned()),
            ("PERPLEXITY_BASE_URL", format!("{base}/pplx")),
            ("X_API_BASE_URL", format!("{base}/xapi")),
            ("NITTER_INSTANCES", base),
            ("NITTER_QUERIES", "palm oil".to_owned()),
        ];
        if with_ca {
            env.push(("SENTIMENT_CA_FILE", self.ca.display().to_string()));
        }
        env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// Runs `palm-oil-bot sentiment` while the mocks serve.
    fn sentiment(&self, with_ca: bool) -> Output {
        cli::run_bot(
            self.dir.path(),
            &["sentiment"],
            &self.env(with_ca),
            RUN_DEADLINE,
        )
    }

    /// Every request the mocks saw, in arrival order.
    fn requests(&self) -> Vec<Request> {
        self.rt
            .block_on(self.server.received_requests())
            .unwrap_or_default()
    }

    /// The API each request went to, in arrival order.
    fn order(&self) -> Vec<&'static str> {
        self.requests()
            .iter()
            .map(|r| match r.url.path() {
                PPLX_PATH => "perplexity",
                NITTER_PATH => "nitter",
                X_PATH => "x",
                other => panic!("unexpected request to {other}"),
            })
            .collect()
    }
}

impl Drop for Mocks {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Accepts TLS on a loopback port and relays each connection to `backend` in plain TCP, until
/// `stop` turns true.
async fn tls_front(
    backend: SocketAddr,
    certs: &ctrader_sim::GeneratedCertificates,
    mut stop: watch::Receiver<bool>,
) -> SocketAddr {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.server_cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certs.server_key).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => return,
                },
                _ = stop.changed() => return,
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A failed handshake (a client that does not trust the CA) just ends here.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut plain) = TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    addr
}

/// A completed Responses API run whose answer is `answer`.
fn perplexity_run(answer: &str) -> serde_json::Value {
    json!({
        "id": "resp_e2e",
        "object": "response",
        "model": "perplexity/sonar",
        "status": "completed",
        "output": [
            {"type": "search_results", "results": [
                {"title": "Malaysia palm oil exports rise", "url": "https://example.com/a"}
            ]},
            {"type": "message", "role": "assistant", "content": [
                {"type": "output_text", "text": answer}
            ]}
        ]
    })
}

const GOOD_ANSWER: &str = r#"{"score": 0.42, "confidence": 0.7, "summary": "exports up, stocks seen lower", "item_count": 6}"#;

/// A Nitter search feed of three recent, clearly bullish posts.
fn nitter_feed() -> String {
    let now = chrono::Utc::now();
    let mut items = String::new();
    for (id, text) in [
        ("1", "Palm oil exports rise 8% says ITS, bullish"),
        ("2", "FCPO bullish as palm oil stocks fall"),
        ("3", "Palm oil prices rise on strong exports"),
    ] {
        let date = (now - chrono::Duration::minutes(30)).format("%a, %d %b %Y %H:%M:%S GMT");
        items.push_str(&format!(
            "<item><title>{text}</title><dc:creator>@trader</dc:creator>\
             <description><![CDATA[<p>{text}</p>]]></description><pubDate>{date}</pubDate>\
             <guid>https://nitter.example/trader/status/{id}#m</guid>\
             <link>https://nitter.example/trader/status/{id}#m</link></item>"
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <rss xmlns:dc=\"http://purl.org/dc/elements/1.1/\" version=\"2.0\"><channel>\
         <title>Nitter search</title><link>https://nitter.example</link>{items}</channel></rss>"
    )
}

/// An X recent-search answer of three recent, clearly bearish posts.
fn x_answer() -> serde_json::Value {
    let at = (chrono::Utc::now() - chrono::Duration::minutes(20))
        .format("%Y-%m-%dT%H:%M:%S.000Z")
        .to_string();
    json!({
        "data": [
            {"id": "1", "text": "Palm oil stocks rise to a record, bearish", "created_at": at},
            {"id": "2", "text": "FCPO bearish as palm oil exports fall", "created_at": at},
            {"id": "3", "text": "Palm oil prices fall on weak exports", "created_at": at}
        ],
        "meta": {"result_count": 3}
    })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Neither credential, nor any part of one, appears in what the command printed.
fn assert_no_key_printed(out: &Output) {
    let all = text(out);
    for secret in [PPLX_KEY, X_TOKEN, "E2E-KEY", "E2E-TOKEN"] {
        assert!(!all.contains(secret), "{secret} was printed:\n{all}");
    }
}

fn source_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("source"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn mock(route: &str) -> wiremock::MockBuilder {
    let verb = if route == PPLX_PATH { "POST" } else { "GET" };
    Mock::given(method(verb)).and(path(route))
}

#[test]
fn perplexity_rate_limited_once_is_retried_after_its_wait_and_answers() {
    let mocks = Mocks::start();
    mocks.mount(
        mock(PPLX_PATH)
            .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
            .up_to_n_times(1)
            .with_priority(1),
    );
    mocks.mount(
        mock(PPLX_PATH)
            .respond_with(ResponseTemplate::new(200).set_body_json(perplexity_run(GOOD_ANSWER)))
            .with_priority(2),
    );
    let out = mocks.sentiment(true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(source_of(&out), "perplexity", "{}", text(&out));
    assert!(text(&out).contains("score       +0.42"), "{}", text(&out));
    assert_eq!(mocks.order(), ["perplexity", "perplexity"]);
    // The key went where it belongs: in the Authorization header to the configured API.
    for request in mocks.requests() {
        let auth = request.headers.get("authorization").unwrap();
        assert_eq!(auth.to_str().unwrap(), format!("Bearer {PPLX_KEY}"));
    }
    assert_no_key_printed(&out);
}

#[test]
fn perplexity_server_errors_are_retried_then_nitter_answers() {
    let mocks = Mocks::start();
    mocks.mount(mock(PPLX_PATH).respond_with(ResponseTemplate::new(503)));
    mocks.mount(
        mock(NITTER_PATH).respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", "application/rss+xml")
                .set_body_string(nitter_feed()),
        ),
    );
    mocks.mount(mock(X_PATH).respond_with(ResponseTemplate::new(200).set_body_json(x_answer())));
    let out = mocks.sentiment(true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(source_of(&out), "nitter", "{}", text(&out));
    // Four attempts at Perplexity (the first and three retries), then Nitter; X never asked.
    assert_eq!(
        mocks.order(),
        [
            "perplexity",
            "perplexity",
            "perplexity",
            "perplexity",
            "nitter"
        ]
    );
    assert_no_key_printed(&out);
}

#[test]
fn a_malformed_answer_and_a_failing_nitter_fall_through_to_x() {
    let mocks = Mocks::start();
    mocks.mount(
        mock(PPLX_PATH).respond_with(ResponseTemplate::new(200).set_body_raw(
            "{\"status\": \"completed\", \"output\": [",
            "application/json",
        )),
    );
    mocks.mount(mock(NITTER_PATH).respond_with(ResponseTemplate::new(500)));
    mocks.mount(mock(X_PATH).respond_with(ResponseTemplate::new(200).set_body_json(x_answer())));
    let out = mocks.sentiment(true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(source_of(&out), "x", "{}", text(&out));
    let order = mocks.order();
    // A malformed answer is not retried (asking again would cost the same); Nitter's failure
    // is; X comes last.
    assert_eq!(order.first(), Some(&"perplexity"), "{order:?}");
    assert_eq!(
        order.iter().filter(|s| **s == "perplexity").count(),
        1,
        "{order:?}"
    );
    assert_eq!(order.last(), Some(&"x"), "{order:?}");
    let nitter_at = order
        .iter()
        .position(|s| *s == "nitter")
        .expect("nitter asked");
    assert!(
        nitter_at == 1 && order[1..order.len() - 1].iter().all(|s| *s == "nitter"),
        "{order:?}"
    );
    let x_request = mocks.requests().into_iter().last().unwrap();
    assert_eq!(
        x_request
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap(),
        format!("Bearer {X_TOKEN}")
    );
    assert_no_key_printed(&out);
}

#[test]
fn every_source_failing_names_each_reason_and_exits_1() {
    let mocks = Mocks::start();
    mocks.mount(mock(PPLX_PATH).respond_with(
        ResponseTemplate::new(200).set_body_json(perplexity_run("not the JSON asked for")),
    ));
    mocks.mount(mock(NITTER_PATH).respond_with(ResponseTemplate::new(502)));
    mocks.mount(
        mock(X_PATH)
            .respond_with(ResponseTemplate::new(403).set_body_json(json!({"title": "Forbidden"}))),
    );
    let out = mocks.sentiment(true);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("sentiment unavailable"), "{all}");
    for source in ["perplexity:", "nitter:", "x:"] {
        assert!(all.contains(source), "{source} missing from\n{all}");
    }
    let order = mocks.order();
    assert_eq!(order.first(), Some(&"perplexity"), "{order:?}");
    assert_eq!(order.last(), Some(&"x"), "{order:?}");
    assert_no_key_printed(&out);
}

#[test]
fn without_the_extra_ca_the_mocks_are_not_trusted() {
    let mocks = Mocks::start();
    mocks.mount(
        mock(PPLX_PATH)
            .respond_with(ResponseTemplate::new(200).set_body_json(perplexity_run(GOOD_ANSWER))),
    );
    let out = mocks.sentiment(false);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.to_lowercase().contains("certificate"), "{all}");
    // Nothing got past the TLS handshake.
    assert!(mocks.requests().is_empty());
    assert_no_key_printed(&out);
}

#[test]
fn a_missing_ca_file_is_a_configuration_error() {
    let mocks = Mocks::start();
    let mut env = mocks.env(false);
    env.push(("SENTIMENT_CA_FILE".to_owned(), "no-such-ca.pem".to_owned()));
    let out = cli::run_bot(mocks.dir.path(), &["sentiment"], &env, RUN_DEADLINE);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("SENTIMENT_CA_FILE"), "{}", text(&out));
    assert!(mocks.requests().is_empty());
}

/// A forward proxy that understands only `CONNECT host:port` (as `HTTPS_PROXY` clients use it),
/// records each target and tunnels to it; stops with the mocks.
async fn connect_proxy(
    seen: Arc<std::sync::Mutex<Vec<String>>>,
    mut stop: watch::Receiver<bool>,
) -> SocketAddr {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => return,
                },
                _ = stop.changed() => return,
            };
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut client = BufReader::new(tcp);
                let mut request_line = String::new();
                if client.read_line(&mut request_line).await.is_err() {
                    return;
                }
                // Skip the headers up to the blank line (bounded by the client's request).
                let mut header = String::new();
                while client.read_line(&mut header).await.is_ok_and(|n| n > 2) {
                    header.clear();
                }
                let Some(target) = request_line
                    .strip_prefix("CONNECT ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned)
                else {
                    return;
                };
                seen.lock().unwrap().push(target.clone());
                let Ok(mut upstream) = TcpStream::connect(&target).await else {
                    return;
                };
                let mut client = client.into_inner();
                if client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    addr
}

/// `HTTPS_PROXY` (documented in the README) is honoured: the request tunnels through the proxy
/// to the allow-listed host, with TLS end to end.
#[test]
fn https_proxy_carries_the_request_through_a_connect_tunnel() {
    let mocks = Mocks::start();
    mocks.mount(
        mock(PPLX_PATH)
            .respond_with(ResponseTemplate::new(200).set_body_json(perplexity_run(GOOD_ANSWER))),
    );
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let proxy = mocks
        .rt
        .block_on(connect_proxy(Arc::clone(&seen), mocks.stop.subscribe()));
    let mut env = mocks.env(true);
    env.push(("HTTPS_PROXY".to_owned(), format!("http://{proxy}")));
    let out = cli::run_bot(mocks.dir.path(), &["sentiment"], &env, RUN_DEADLINE);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(source_of(&out), "perplexity", "{}", text(&out));
    assert_eq!(
        *seen.lock().unwrap(),
        [format!("127.0.0.1:{}", mocks.front.port())],
        "the request did not go through the proxy"
    );
    assert_eq!(mocks.order(), ["perplexity"]);
    assert_no_key_printed(&out);
}

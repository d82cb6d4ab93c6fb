//! The one HTTP client: allow-list refusal before connecting, HTTPS outside loopback, redirects
//! checked against the allow-list, and the response-size cap on streamed bodies.

// Helpers in a test crate fail the test by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use scraper::{
    ConfigError, HttpClient, HttpError, HttpPolicy, HttpRequest, SourceInputs, SourceKind,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn loopback_policy(max_response_bytes: usize) -> HttpPolicy {
    HttpPolicy {
        allowed_hosts: vec!["127.0.0.1".to_owned()],
        allow_plain_http_loopback: true,
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        max_response_bytes,
        max_redirects: 3,
        extra_ca_file: None,
    }
}

#[tokio::test]
async fn hosts_off_the_allow_list_are_refused_before_connecting() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let client = HttpClient::new(loopback_policy(1024)).unwrap();
        let port = server.address().port();
        let url = reqwest::Url::parse(&format!("http://localhost:{port}/x")).unwrap();
        let err = client.send(HttpRequest::get(url)).await.unwrap_err();
        assert_eq!(
            err,
            HttpError::HostNotAllowed {
                host: "localhost".to_owned()
            }
        );
        assert!(err.to_string().contains("\"localhost\""));
        assert!(server.received_requests().await.unwrap().is_empty());

        let err = client
            .checked_url("https://evil.example/steal")
            .unwrap_err();
        assert!(err.to_string().contains("evil.example"), "{err}");
    })
    .await;
}

#[test]
fn plain_http_is_only_for_allowed_loopback_hosts() {
    let mut policy = loopback_policy(1024);
    policy.allowed_hosts.push("api.perplexity.ai".to_owned());
    let client = HttpClient::new(policy.clone()).unwrap();
    assert!(client.checked_url("http://127.0.0.1:8080/x").is_ok());
    assert_eq!(
        client
            .checked_url("http://api.perplexity.ai/v1/responses")
            .unwrap_err(),
        HttpError::InsecureScheme {
            host: "api.perplexity.ai".to_owned()
        }
    );
    assert!(
        client
            .checked_url("https://api.perplexity.ai/v1/responses")
            .is_ok()
    );
    policy.allow_plain_http_loopback = false;
    let strict = HttpClient::new(policy).unwrap();
    assert!(matches!(
        strict.checked_url("http://127.0.0.1:8080/x"),
        Err(HttpError::InsecureScheme { .. })
    ));
}

#[tokio::test]
async fn redirects_to_hosts_off_the_allow_list_are_refused() {
    bounded(async {
        let server = MockServer::start().await;
        let port = server.address().port();
        Mock::given(method("GET"))
            .and(path("/start"))
            .respond_with(ResponseTemplate::new(302).insert_header(
                "location",
                format!("http://localhost:{port}/landing").as_str(),
            ))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/landing"))
            .respond_with(ResponseTemplate::new(200).set_body_string("followed"))
            .mount(&server)
            .await;
        let client = HttpClient::new(loopback_policy(1024)).unwrap();
        let url = client
            .checked_url(&format!("{}/start", server.uri()))
            .unwrap();
        let err = client.send(HttpRequest::get(url)).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("redirect refused") && text.contains("localhost"),
            "{text}"
        );
        assert_eq!(server.received_requests().await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn an_oversized_declared_body_is_refused() {
    bounded(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_string("x".repeat(5_000)))
            .mount(&server)
            .await;
        let client = HttpClient::new(loopback_policy(1_000)).unwrap();
        let url = client
            .checked_url(&format!("{}/big", server.uri()))
            .unwrap();
        let err = client.send(HttpRequest::get(url)).await.unwrap_err();
        assert!(
            matches!(err, HttpError::ResponseTooLarge { limit: 1_000, .. }),
            "{err}"
        );

        let fits = HttpClient::new(loopback_policy(5_000)).unwrap();
        let url = fits.checked_url(&format!("{}/big", server.uri())).unwrap();
        assert_eq!(
            fits.send(HttpRequest::get(url)).await.unwrap().body.len(),
            5_000
        );
    })
    .await;
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_at_the_cap() {
    bounded(async {
        // A server that streams chunks with no declared length, for up to 4 MiB.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            socket
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            let chunk = format!("400\r\n{}\r\n", "y".repeat(1024));
            let mut sent = 0usize;
            for _ in 0..4096 {
                if socket.write_all(chunk.as_bytes()).await.is_err() {
                    break;
                }
                sent += 1024;
            }
            sent
        });
        let client = HttpClient::new(loopback_policy(64 * 1024)).unwrap();
        let url = client
            .checked_url(&format!("http://127.0.0.1:{port}/stream"))
            .unwrap();
        let err = client.send(HttpRequest::get(url)).await.unwrap_err();
        assert!(
            matches!(err, HttpError::ResponseTooLarge { limit: 65_536, .. }),
            "{err}"
        );
        // The client hung up long before the server finished its 4 MiB.
        let sent = server.await.unwrap();
        assert!(sent < 4096 * 1024, "server sent everything: {sent}");
    })
    .await;
}

#[test]
fn configuration_refuses_sources_off_the_allow_list_and_missing_keys() {
    let mut config = loopback_config(
        vec![SourceKind::Perplexity, SourceKind::Nitter],
        "https://api.perplexity.ai",
        &["https://nitter.example".to_owned()],
    );
    config
        .http
        .allowed_hosts
        .push("api.perplexity.ai".to_owned());
    let inputs = SourceInputs {
        perplexity_api_key: Some(domain::Secret::new(KEY)),
        ..SourceInputs::default()
    };
    let err = config.build(inputs.clone(), clock()).unwrap_err();
    assert_eq!(
        err,
        ConfigError::HostNotAllowed {
            setting: "nitter.instances[0]".to_owned(),
            host: "nitter.example".to_owned()
        }
    );
    config.nitter.instances = vec!["http://127.0.0.1:9".to_owned()];
    assert!(config.build(inputs, clock()).is_ok());
    let err = config.build(SourceInputs::default(), clock()).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::MissingCredential {
            source_name: "perplexity",
            ..
        }
    ));
    config.nitter.queries = vec!["q".repeat(201)];
    config.order = vec![SourceKind::Nitter];
    let err = config.build(SourceInputs::default(), clock()).unwrap_err();
    assert!(err.to_string().contains("nitter.queries[0]"), "{err}");
}

#[test]
fn the_default_configuration_deserialises_and_names_the_real_hosts() {
    let config: scraper::SentimentConfig = toml::from_str(
        r#"
        order = ["perplexity", "nitter", "replay"]
        cache_ttl_secs = 300
        [nitter]
        instances = ["https://nitter.net"]
        "#,
    )
    .unwrap();
    assert_eq!(config.cache_ttl_secs, 300);
    assert_eq!(config.perplexity.model, "perplexity/sonar");
    assert_eq!(
        config.perplexity.endpoint(),
        "https://api.perplexity.ai/v1/responses"
    );
    assert!(!config.http.allow_plain_http_loopback);
    let unknown = toml::from_str::<scraper::SentimentConfig>("ordr = []");
    assert!(unknown.is_err());
    let service = config
        .build(
            SourceInputs {
                perplexity_api_key: Some(domain::Secret::new(KEY)),
                ..SourceInputs::default()
            },
            clock(),
        )
        .unwrap();
    assert_eq!(service.source_names(), ["perplexity", "nitter", "replay"]);
}

#[test]
fn an_extra_ca_that_cannot_be_used_is_refused_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("scraper-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.pem");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificate in here\n").unwrap();
    for (file, needle) in [
        (&missing, "cannot read extra CA"),
        (&empty, "holds no PEM certificate"),
    ] {
        let policy = HttpPolicy {
            extra_ca_file: Some(file.clone()),
            ..loopback_policy(1024)
        };
        let err = HttpClient::new(policy).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

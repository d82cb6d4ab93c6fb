//! `palm-oil-bot auth` against a local mock of the cTrader token endpoint (wiremock on
//! loopback): the authorisation address, a pasted code, a code caught by the loopback redirect
//! listener, and an error answer. No secret is printed except the issued tokens, once.

// Test code: a broken expectation panics, which is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_palm-oil-bot");
const SECRET: &str = "client-SECRET-5e1a";

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `auth ARGS` with the token endpoint at `token_url`; `during` runs while it waits.
fn auth(
    token_url: &str,
    redirect: &str,
    args: &[&str],
    stdin: &str,
    during: impl FnOnce(),
) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .env_clear()
        .current_dir(dir.path())
        .arg("auth")
        .args(args)
        .env("CTRADER_CLIENT_ID", "1234_app")
        .env("CTRADER_CLIENT_SECRET", SECRET)
        .env("CTRADER_REDIRECT_URI", redirect)
        .env("CTRADER_TOKEN_URL", token_url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    during();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("auth did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Output {
        code: status.code(),
        stdout,
        stderr,
    }
}

fn mock_server(
    rt: &tokio::runtime::Runtime,
    answer: ResponseTemplate,
    code: &str,
    redirect: &str,
) -> MockServer {
    rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/apps/token"))
            .and(query_param("grant_type", "authorization_code"))
            .and(query_param("code", code))
            .and(query_param("client_id", "1234_app"))
            .and(query_param("client_secret", SECRET))
            .and(query_param("redirect_uri", redirect))
            .respond_with(answer)
            .expect(1)
            .mount(&server)
            .await;
        server
    })
}

fn issued() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "accessToken": "at-issued-1", "tokenType": "bearer", "expiresIn": 2628000,
        "refreshToken": "rt-issued-1", "errorCode": null, "description": null
    }))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_pasted_code_is_exchanged_and_the_tokens_are_shown_once() {
    let rt = runtime();
    let redirect = "https://example.com/callback";
    let server = mock_server(&rt, issued(), "code-42", redirect);
    let out = auth(
        &format!("{}/apps/token", server.uri()),
        redirect,
        &[],
        "https://example.com/callback?code=code-42\n",
        || {},
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "CTRADER_ACCESS_TOKEN=at-issued-1\nCTRADER_REFRESH_TOKEN=rt-issued-1\n"
    );
    assert!(
        out.stderr.contains("https://id.ctrader.com/my/settings/openapi/grantingaccess/?client_id=1234_app&redirect_uri=https%3A%2F%2Fexample.com%2Fcallback"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(SECRET) && !out.stdout.contains(SECRET));
    assert!(
        !out.stderr.contains("at-issued-1"),
        "shown once, on stdout only"
    );
    rt.block_on(server.verify());
}

#[test]
fn an_error_answer_is_named_and_exits_3() {
    let rt = runtime();
    let redirect = "https://example.com/callback";
    let refusal = ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "accessToken": null, "refreshToken": null,
        "errorCode": "ACCESS_DENIED", "description": "Authorization code is expired"
    }));
    let server = mock_server(&rt, refusal, "old-code", redirect);
    let out = auth(
        &format!("{}/apps/token", server.uri()),
        redirect,
        &[],
        "old-code\n",
        || {},
    );
    assert_eq!(out.code, Some(3), "{}", out.stderr);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("ACCESS_DENIED") && out.stderr.contains("expired"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(SECRET));
}

#[test]
fn the_loopback_listener_catches_the_redirect() {
    let rt = runtime();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let server = mock_server(&rt, issued(), "code-from-browser", &redirect);
    let out = auth(
        &format!("{}/apps/token", server.uri()),
        &redirect,
        &["--listen", "--timeout", "60s"],
        "",
        || {
            // The browser's redirect, once the listener is up (bounded retries).
            for _ in 0..250 {
                if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                    stream
                        .write_all(b"GET /callback?code=code-from-browser HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                        .unwrap();
                    let mut page = String::new();
                    let _ = stream.read_to_string(&mut page);
                    assert!(page.contains("received the code"), "{page}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            panic!("the listener never came up");
        },
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("CTRADER_REFRESH_TOKEN=rt-issued-1"));
    rt.block_on(server.verify());
}

#[test]
fn an_unreachable_endpoint_or_missing_settings_are_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = auth(
        &format!("http://127.0.0.1:{port}/apps/token"),
        "https://example.com/callback",
        &[],
        "some-code\n",
        || {},
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("could not be reached"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(SECRET), "{}", out.stderr);
    let out = auth("http://127.0.0.1:1/apps/token", "", &[], "", || {});
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("CTRADER_REDIRECT_URI"),
        "{}",
        out.stderr
    );
}

//! `auth`: obtains the first cTrader tokens for the Open API application. It prints the
//! authorisation address for the application's client id and redirect URI, takes the code the
//! browser is redirected with (pasted on standard input, or caught by a listener on the loopback
//! redirect address with `--listen`), exchanges it at the token endpoint, and shows the tokens
//! once on standard output for the operator to store as secrets. Nothing is logged or stored.

use std::io::BufRead as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use domain::Secret;
use reqwest::Url;
use scraper::{HttpClient, HttpPolicy, HttpRequest};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::commands::check_config::load_settings;
use crate::commands::run::parse_duration;
use crate::runtime::{EXIT_CONFIG, EXIT_OK, EXIT_REFUSED, EXIT_RUNTIME};

/// Options of `auth`.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// Catch the browser's redirect on CTRADER_REDIRECT_URI (an http://127.0.0.1:PORT/... or
    /// http://localhost:PORT/... address) instead of reading the pasted code.
    #[arg(long)]
    pub listen: bool,
    /// Give up waiting for the code after this long (e.g. 90s, 5m).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub timeout: Duration,
}

/// Why `auth` did not finish, with its exit status.
#[derive(Debug)]
struct AuthFailure {
    message: String,
    code: u8,
}

impl AuthFailure {
    fn usage(message: impl Into<String>) -> AuthFailure {
        AuthFailure {
            message: message.into(),
            code: EXIT_CONFIG,
        }
    }
    fn refused(message: impl Into<String>) -> AuthFailure {
        AuthFailure {
            message: message.into(),
            code: EXIT_REFUSED,
        }
    }
    fn failed(message: impl Into<String>) -> AuthFailure {
        AuthFailure {
            message: message.into(),
            code: EXIT_RUNTIME,
        }
    }
}

/// The tokens the token endpoint issued.
struct IssuedTokens {
    access: Secret,
    refresh: Secret,
    expires_in: Option<i64>,
}

/// Runs `auth`: 0 with the tokens shown, 2 for missing or bad settings, 3 when the endpoint
/// refuses the code (or the person refused access), 1 when it cannot be reached.
#[allow(clippy::print_stderr, clippy::print_stdout)] // talks to the operator at a terminal
pub fn run(config_path: Option<&Path>, args: &AuthArgs) -> ExitCode {
    let client_secret = std::env::var("CTRADER_CLIENT_SECRET").ok().map(Secret::new);
    let outcome = prepare(config_path).and_then(|(client_id, redirect, auth_url, token_url)| {
        let secret = client_secret
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AuthFailure::usage("CTRADER_CLIENT_SECRET: is missing (set it in the environment)"))?;
        let address = authorisation_url(&auth_url, &client_id, &redirect)?;
        eprintln!(
            "Open this address in a browser, log in with the cTrader ID that owns the account and allow access:\n\n{address}\n"
        );
        let runtime = crate::runtime::async_runtime(crate::runtime::RuntimeKind::OneShot)
            .map_err(|_| AuthFailure::failed("cannot start the async runtime"))?;
        runtime.block_on(async {
            let code = if args.listen {
                eprintln!("Waiting for the redirect to {redirect} ...");
                catch_redirect(&redirect, args.timeout).await?
            } else {
                eprintln!("Then paste the code (or the whole address you were sent to) here:");
                read_pasted_code(args.timeout).await?
            };
            exchange(&token_url, &client_id, &secret, &redirect, &code).await
        })
    });
    match outcome {
        Ok(tokens) => {
            println!("CTRADER_ACCESS_TOKEN={}", tokens.access.expose());
            println!("CTRADER_REFRESH_TOKEN={}", tokens.refresh.expose());
            eprintln!(
                "\nStore both values as secrets now: they are not shown again.{} The bot refreshes \
                 the access token before it expires and keeps the new pair, encrypted, in its database.",
                tokens
                    .expires_in
                    .map(|s| format!(" The access token expires in {s} s."))
                    .unwrap_or_default()
            );
            ExitCode::from(EXIT_OK)
        }
        Err(failure) => {
            // Transport errors may quote the request address, which carries the secret.
            let mut message = failure.message;
            if let Some(secret) = client_secret.filter(|s| !s.is_empty()) {
                message = message.replace(secret.expose(), "[redacted]");
            }
            eprintln!("error: {message}");
            ExitCode::from(failure.code)
        }
    }
}

/// The settings `auth` needs: client id, redirect URI, authorisation and token addresses.
fn prepare(config_path: Option<&Path>) -> Result<(String, Url, Url, Url), AuthFailure> {
    let (raw, _) = load_settings(config_path).map_err(|e| AuthFailure::usage(e.to_string()))?;
    let setting = |name: &str| {
        raw.get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let client_id = std::env::var("CTRADER_CLIENT_ID")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| {
            AuthFailure::usage("CTRADER_CLIENT_ID: is missing (set it in the environment)")
        })?;
    let url = |name: &str| -> Result<Url, AuthFailure> {
        let text = setting(name).ok_or_else(|| {
            AuthFailure::usage(format!(
                "{name}: is missing (the redirect URI registered for the Open API application)"
            ))
        })?;
        Url::parse(&text)
            .map_err(|e| AuthFailure::usage(format!("{name}: {text:?} is not a URL: {e}")))
    };
    Ok((
        client_id,
        url("CTRADER_REDIRECT_URI")?,
        url("CTRADER_AUTH_URL")?,
        url("CTRADER_TOKEN_URL")?,
    ))
}

/// The address where a person grants the application access to their accounts.
fn authorisation_url(base: &Url, client_id: &str, redirect: &Url) -> Result<Url, AuthFailure> {
    if base.scheme() != "https" {
        return Err(AuthFailure::usage(format!(
            "CTRADER_AUTH_URL: {base} must be an https:// address"
        )));
    }
    let mut url = base.clone();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect.as_str())
        .append_pair("scope", "trading")
        .append_pair("product", "web");
    Ok(url)
}

/// The code from what a person pasted: the bare code, or the address the browser landed on.
fn code_from_text(text: &str) -> Result<String, AuthFailure> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AuthFailure::usage("no code was given"));
    }
    match Url::parse(text) {
        Ok(url) => code_from_query(&url),
        Err(_)
            if text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.~".contains(c)) =>
        {
            Ok(text.to_owned())
        }
        Err(_) => Err(AuthFailure::usage(
            "that is neither a code nor the address the browser was sent to",
        )),
    }
}

/// The `code` query parameter, or the authorisation server's `error`.
fn code_from_query(url: &Url) -> Result<String, AuthFailure> {
    let mut error = None;
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "code" if !value.is_empty() => return Ok(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            _ => {}
        }
    }
    match error {
        Some(e) => Err(AuthFailure::refused(format!("access was not granted: {e}"))),
        None => Err(AuthFailure::usage("the address carries no code parameter")),
    }
}

async fn read_pasted_code(timeout: Duration) -> Result<String, AuthFailure> {
    let read = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    });
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(Ok(line))) => code_from_text(&line),
        Ok(Ok(Err(e))) => Err(AuthFailure::failed(format!("reading the code: {e}"))),
        Ok(Err(e)) => Err(AuthFailure::failed(format!("reading the code: {e}"))),
        Err(_) => Err(AuthFailure::usage(format!("no code within {timeout:?}"))),
    }
}

/// Listens on the redirect URI's loopback address for the browser's request and reads the code
/// from it; answers the browser with a short page.
async fn catch_redirect(redirect: &Url, timeout: Duration) -> Result<String, AuthFailure> {
    let host = redirect.host_str().unwrap_or_default();
    if redirect.scheme() != "http" || !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
        return Err(AuthFailure::usage(format!(
            "--listen needs CTRADER_REDIRECT_URI on this machine (http://127.0.0.1:PORT/...), not {redirect}"
        )));
    }
    let port = redirect.port_or_known_default().unwrap_or(80);
    let bind = if host == "[::1]" {
        "[::1]"
    } else {
        "127.0.0.1"
    };
    let listener = tokio::net::TcpListener::bind(format!("{bind}:{port}"))
        .await
        .map_err(|e| AuthFailure::failed(format!("cannot listen on {bind}:{port}: {e}")))?;
    let wait = async {
        loop {
            let (mut stream, _) = listener
                .accept()
                .await
                .map_err(|e| AuthFailure::failed(format!("accepting the redirect: {e}")))?;
            let mut buffer = vec![0_u8; 8192];
            let mut filled = 0;
            // One request head, at most 8 KiB: enough for a redirect with a code.
            while filled < buffer.len() && !buffer[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer[filled..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => filled += n,
                }
            }
            let head = String::from_utf8_lossy(&buffer[..filled]).into_owned();
            let target = head
                .lines()
                .next()
                .and_then(|line| line.strip_prefix("GET "))
                .and_then(|rest| rest.split(' ').next())
                .unwrap_or_default()
                .to_owned();
            let Ok(url) = redirect.join(&target) else {
                continue;
            };
            if url.path() != redirect.path() {
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                    )
                    .await;
                continue;
            }
            let result = code_from_query(&url);
            let page = if result.is_ok() {
                "palm-oil-bot received the code; you can close this window."
            } else {
                "palm-oil-bot did not receive a code; see the terminal."
            };
            let _ = stream
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{page}",
                        page.len()
                    )
                    .as_bytes(),
                )
                .await;
            return result;
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| AuthFailure::usage(format!("no redirect within {timeout:?}")))?
}

/// Exchanges the code at the token endpoint (`grant_type=authorization_code`).
async fn exchange(
    token_url: &Url,
    client_id: &str,
    secret: &Secret,
    redirect: &Url,
    code: &str,
) -> Result<IssuedTokens, AuthFailure> {
    let host = token_url.host_str().unwrap_or_default().to_owned();
    let client = HttpClient::new(HttpPolicy {
        allowed_hosts: vec![host.clone()],
        // Plain http only to this machine (a local mock of the endpoint).
        allow_plain_http_loopback: true,
        ..HttpPolicy::default()
    })
    .map_err(|e| AuthFailure::failed(format!("HTTP client: {e}")))?;
    let mut url = client
        .checked_url(token_url.as_str())
        .map_err(|e| AuthFailure::usage(format!("CTRADER_TOKEN_URL: {e}")))?;
    url.query_pairs_mut()
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect.as_str())
        .append_pair("client_id", client_id)
        .append_pair("client_secret", secret.expose());
    let response = client
        .send(HttpRequest::get(url).header("accept", "application/json"))
        .await
        .map_err(|e| {
            AuthFailure::failed(format!(
                "the token endpoint {host} could not be reached: {e}"
            ))
        })?;
    let body: serde_json::Value = serde_json::from_slice(&response.body).map_err(|_| {
        AuthFailure::failed(format!(
            "the token endpoint {host} answered HTTP {} without JSON",
            response.status.as_u16()
        ))
    })?;
    let text = |key: &str| {
        body.get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
    };
    if let Some(code) = text("errorCode").or_else(|| text("error")) {
        let description = text("description")
            .or_else(|| text("error_description"))
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Err(AuthFailure::refused(format!(
            "the token endpoint refused the code: {code}{description}"
        )));
    }
    if !response.status.is_success() {
        return Err(AuthFailure::refused(format!(
            "the token endpoint answered HTTP {}",
            response.status.as_u16()
        )));
    }
    match (text("accessToken"), text("refreshToken")) {
        (Some(access), Some(refresh)) if !access.is_empty() && !refresh.is_empty() => {
            Ok(IssuedTokens {
                access: Secret::new(access),
                refresh: Secret::new(refresh),
                expires_in: body.get("expiresIn").and_then(serde_json::Value::as_i64),
            })
        }
        _ => Err(AuthFailure::failed(
            "the token endpoint's answer has no accessToken and refreshToken",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pasted_address_or_bare_code_gives_the_code() {
        assert_eq!(code_from_text(" abc-123 \n").unwrap(), "abc-123");
        assert_eq!(
            code_from_text("https://example.com/cb?code=xyz&state=1").unwrap(),
            "xyz"
        );
        let denied = code_from_text("https://example.com/cb?error=access_denied").unwrap_err();
        assert_eq!(denied.code, EXIT_REFUSED);
        assert!(code_from_text("not a code!").is_err());
        assert!(code_from_text("").is_err());
    }

    #[test]
    fn the_authorisation_address_names_the_app_and_its_redirect() {
        let base =
            Url::parse("https://id.ctrader.com/my/settings/openapi/grantingaccess/").unwrap();
        let redirect = Url::parse("http://127.0.0.1:8123/cb").unwrap();
        let url = authorisation_url(&base, "1234_abc", &redirect).unwrap();
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("client_id".into(), "1234_abc".into())));
        assert!(pairs.contains(&("redirect_uri".into(), "http://127.0.0.1:8123/cb".into())));
        assert!(pairs.contains(&("scope".into(), "trading".into())));
        let plain = Url::parse("http://id.example/").unwrap();
        assert!(authorisation_url(&plain, "x", &redirect).is_err());
    }
}

//! The one HTTP client every source uses: rustls (ring + webpki roots, plus an optional private CA
//! for an API gateway or a test mock), timeouts, a host allow-list checked before connecting and
//! on every redirect, and a response-size cap. Proxies come from `HTTPS_PROXY`/`NO_PROXY`, which
//! reqwest reads itself; the allow-list still applies to the destination host.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url, redirect};

use crate::error::HttpError;

/// What the client may talk to and how long it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Hosts requests may go to (exact, case-insensitive); everything else is refused.
    pub allowed_hosts: Vec<String>,
    /// Permit plain `http://` to 127.0.0.1, localhost and ::1 (tests only); never other hosts.
    pub allow_plain_http_loopback: bool,
    /// Time allowed to open a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Time allowed for a whole request, unless a request sets its own.
    pub request_timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// Redirects followed at most (each one checked against the allow-list).
    pub max_redirects: usize,
    /// PEM file of a private CA trusted in addition to the public roots (never instead of them).
    pub extra_ca_file: Option<PathBuf>,
}

impl Default for HttpPolicy {
    fn default() -> HttpPolicy {
        HttpPolicy {
            allowed_hosts: Vec::new(),
            allow_plain_http_loopback: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 2 * 1024 * 1024,
            max_redirects: 3,
            extra_ca_file: None,
        }
    }
}

impl HttpPolicy {
    /// Checks scheme and host of `url` against the policy; the error names the host.
    pub fn check(&self, url: &Url) -> Result<(), HttpError> {
        let host = host_of(url);
        if host.is_empty() {
            return Err(HttpError::InvalidUrl {
                url: url.to_string(),
                reason: "no host".to_owned(),
            });
        }
        if !self
            .allowed_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(&host))
        {
            return Err(HttpError::HostNotAllowed { host });
        }
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.allow_plain_http_loopback && is_loopback(&host) => Ok(()),
            _ => Err(HttpError::InsecureScheme { host }),
        }
    }
}

/// The host of a URL without IPv6 brackets, lower-cased.
fn host_of(url: &Url) -> String {
    url.host_str()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

/// A fully read response: status, headers and a body no larger than the cap.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers (rate-limit hints live here).
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text, replacing invalid UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The HTTP client built once and shared by every source.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Arc<HttpPolicy>,
}

impl HttpClient {
    /// Builds the client: rustls with the ring provider and webpki roots, the policy's timeouts,
    /// and a redirect policy that refuses hosts outside the allow-list.
    pub fn new(policy: HttpPolicy) -> Result<HttpClient, HttpError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &policy.extra_ca_file {
            for cert in read_ca(path)? {
                roots.add(cert).map_err(|e| {
                    HttpError::Build(format!("extra CA {} is not usable: {e}", path.display()))
                })?;
            }
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Build(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // reqwest is built without HTTP/2, so offer only HTTP/1.1.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];

        let policy = Arc::new(policy);
        let redirect_policy = {
            let policy = Arc::clone(&policy);
            redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > policy.max_redirects {
                    return attempt.error(format!("more than {} redirects", policy.max_redirects));
                }
                match policy.check(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(format!("redirect refused: {e}")),
                }
            })
        };
        let inner = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.request_timeout)
            .redirect(redirect_policy)
            .build()
            .map_err(|e| HttpError::Build(e.to_string()))?;
        Ok(HttpClient { inner, policy })
    }

    /// The policy this client enforces.
    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }

    /// Parses `url` and checks it against the policy without sending anything.
    pub fn checked_url(&self, url: &str) -> Result<Url, HttpError> {
        let parsed = Url::parse(url).map_err(|e| HttpError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        self.policy.check(&parsed)?;
        Ok(parsed)
    }

    /// Sends one request and reads the body up to the cap. Any status is returned as a
    /// response; only transport and policy problems are errors.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        self.policy.check(&request.url)?;
        let host = host_of(&request.url);
        let mut builder = self.inner.request(request.method, request.url);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        if let Some(timeout) = request.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(body) = request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let transport = |e: reqwest::Error| HttpError::Transport {
            host: host.clone(),
            timed_out: e.is_timeout(),
            reason: describe(&e),
        };
        let mut response = builder.send().await.map_err(transport)?;
        let limit = self.policy.max_response_bytes;
        let too_large = || HttpError::ResponseTooLarge {
            host: host.clone(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|len| usize::try_from(len).map_or(true, |len| len > limit))
        {
            return Err(too_large());
        }
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        // Read chunk by chunk so a huge or endless body is cut off at the cap.
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// The certificates of a PEM file; a file without one is refused (a CA that trusts nothing is a
/// mistake, not a choice).
fn read_ca(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, HttpError> {
    use rustls_pki_types::pem::PemObject;
    let bad = |e: rustls_pki_types::pem::Error| {
        HttpError::Build(format!("cannot read extra CA {}: {e}", path.display()))
    };
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certs.is_empty() {
        return Err(HttpError::Build(format!(
            "extra CA {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The error chain of a reqwest error, URL stripped (queries can be long and are not needed).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// One request to send through [`HttpClient::send`]. Its Debug shows header names only.
pub struct HttpRequest {
    method: Method,
    url: Url,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl HttpRequest {
    /// A GET of `url`.
    pub fn get(url: Url) -> HttpRequest {
        HttpRequest {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    /// A POST of a JSON body to `url`.
    pub fn post_json(url: Url, body: Vec<u8>) -> HttpRequest {
        HttpRequest {
            method: Method::POST,
            url,
            headers: Vec::new(),
            body: Some(body),
            timeout: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> HttpRequest {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds `Authorization: Bearer <secret>`.
    pub fn bearer(mut self, secret: &crate::Secret) -> HttpRequest {
        self.headers
            .push(("authorization", format!("Bearer {}", secret.expose())));
        self
    }

    /// Sets a timeout for this request only.
    pub fn timeout(mut self, timeout: Duration) -> HttpRequest {
        self.timeout = Some(timeout);
        self
    }
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values may hold credentials: show names only.
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("headers", &names)
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .field("timeout", &self.timeout)
            .finish()
    }
}

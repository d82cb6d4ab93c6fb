//! The HTTP server: `/metrics`, `/healthz`, `/readyz` and `/health`, the dashboard at `/` and
//! its data at `/api/status`. HTTP/1.1 only, GET and HEAD only, with every input bounded.

use std::convert::Infallible;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::ObservabilityError;
use crate::dashboard;
use crate::metrics::{Metrics, PROMETHEUS_CONTENT_TYPE};
use crate::status::StatusHandle;

/// The port the server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9184;

/// Smallest header buffer hyper accepts.
const MIN_HEADER_BYTES: usize = 8192;

/// Where and how the server listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerConfig {
    /// Listen address; 127.0.0.1 by default so nothing is exposed unless asked.
    pub addr: SocketAddr,
    /// A client must send its whole request head within this time (slow-loris defence).
    pub header_read_timeout: Duration,
    /// Largest request head accepted (at least 8 KiB); larger ones are refused.
    pub max_header_bytes: usize,
    /// Largest declared request body accepted (every route is a GET: bodies are never read).
    pub max_body_bytes: u64,
    /// Concurrent connections served; further ones are closed at once.
    pub max_connections: usize,
    /// Longest a single connection may stay open, keep-alive included.
    pub max_connection_age: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig::localhost(DEFAULT_PORT)
    }
}

impl ServerConfig {
    /// Listens on 127.0.0.1:`port` with the default limits.
    pub fn localhost(port: u16) -> ServerConfig {
        ServerConfig {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            header_read_timeout: Duration::from_secs(5),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 1024,
            max_connections: 64,
            max_connection_age: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(5),
        }
    }

    /// Listens on `addr` (e.g. `0.0.0.0:9184`) with the default limits.
    pub fn at(addr: SocketAddr) -> ServerConfig {
        ServerConfig {
            addr,
            ..ServerConfig::default()
        }
    }

    /// Parses `host:port` (or a bare port, meaning 127.0.0.1) as the bot reads it from its
    /// configuration or `PORT`.
    pub fn parse_addr(given: &str) -> Result<SocketAddr, ObservabilityError> {
        let trimmed = given.trim();
        if let Ok(port) = trimmed.parse::<u16>() {
            return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        }
        trimmed
            .parse::<SocketAddr>()
            .map_err(|_| ObservabilityError::InvalidAddress {
                given: given.to_owned(),
            })
    }
}

/// What the handlers read: the metrics and the published status.
#[derive(Debug)]
struct App {
    metrics: Arc<Metrics>,
    status: StatusHandle,
    max_body_bytes: u64,
}

/// A bound, not yet serving, HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: ServerConfig,
    app: Arc<App>,
}

impl HttpServer {
    /// Binds the listen address (port 0 picks a free port; see [`HttpServer::local_addr`]).
    pub async fn bind(
        config: ServerConfig,
        metrics: Arc<Metrics>,
        status: StatusHandle,
    ) -> Result<HttpServer, ObservabilityError> {
        let bind_err = |source| ObservabilityError::Bind {
            addr: config.addr,
            source,
        };
        let listener = TcpListener::bind(config.addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(HttpServer {
            listener,
            local_addr,
            config,
            app: Arc::new(App {
                metrics,
                status,
                max_body_bytes: config.max_body_bytes,
            }),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then stops accepting and gives in-flight requests
    /// `shutdown_grace` to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) {
        let HttpServer {
            listener,
            config,
            app,
            ..
        } = self;
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_header_bytes.max(MIN_HEADER_BYTES));
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Usually out of file descriptors: back off instead of spinning.
                            tracing::warn!(error = %e, "http accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        tracing::warn!(%peer, "http connection refused: too many open");
                        drop(stream);
                        continue;
                    };
                    let app = Arc::clone(&app);
                    let service = service_fn(move |req| {
                        let app = Arc::clone(&app);
                        async move { Ok::<_, Infallible>(app.handle(&req)) }
                    });
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                    let max_age = config.max_connection_age;
                    tokio::spawn(async move {
                        let _slot = slot;
                        match tokio::time::timeout(max_age, conn).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "http connection ended"),
                            Err(_) => tracing::debug!(%peer, "http connection closed at its age limit"),
                        }
                    });
                }
            }
        }
        drop(listener);
        if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("http shutdown grace elapsed with requests still open");
        }
    }
}

/// The routes and the methods they accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics,
    Alive,
    Ready,
    Dashboard,
    ApiStatus,
}

impl Route {
    fn of(path: &str) -> Option<Route> {
        match path {
            "/metrics" => Some(Route::Metrics),
            "/healthz" => Some(Route::Alive),
            "/readyz" | "/health" => Some(Route::Ready),
            "/" | "/index.html" => Some(Route::Dashboard),
            "/api/status" => Some(Route::ApiStatus),
            _ => None,
        }
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => respond(status, JSON, body),
        Err(e) => respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            TEXT,
            format!("cannot encode the response: {e}\n"),
        ),
    }
}

/// A request body longer than the cap was declared (or one of unknown length was sent).
fn oversized_body(req: &Request<Incoming>, cap: u64) -> bool {
    if req.headers().contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|len| len > cap)
}

impl App {
    fn handle(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if oversized_body(req, self.max_body_bytes) {
            let mut resp = respond(
                StatusCode::PAYLOAD_TOO_LARGE,
                TEXT,
                "request bodies are not accepted\n",
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
        let Some(route) = Route::of(req.uri().path()) else {
            return respond(StatusCode::NOT_FOUND, TEXT, "not found\n");
        };
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = respond(
                StatusCode::METHOD_NOT_ALLOWED,
                TEXT,
                "method not allowed: use GET\n",
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        match route {
            Route::Metrics => match self.metrics.encode() {
                Ok(text) => respond(StatusCode::OK, PROMETHEUS_CONTENT_TYPE, text),
                Err(e) => {
                    tracing::error!(error = %e, "metrics encoding failed");
                    respond(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("{e}\n"))
                }
            },
            Route::Alive => respond(StatusCode::OK, JSON, r#"{"status":"alive"}"#),
            Route::Ready => {
                let readiness = self.status.readiness();
                let code = if readiness.ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                json_response(code, &readiness)
            }
            Route::ApiStatus => json_response(StatusCode::OK, &self.status.snapshot()),
            Route::Dashboard => {
                let mut resp = respond(
                    StatusCode::OK,
                    "text/html; charset=utf-8",
                    dashboard::render(&self.status.snapshot()),
                );
                // The page is self-contained: nothing may load from elsewhere.
                resp.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(dashboard::CONTENT_SECURITY_POLICY),
                );
                resp
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_localhost_default() {
        assert_eq!(
            ServerConfig::parse_addr("9000").unwrap(),
            "127.0.0.1:9000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            ServerConfig::parse_addr(" 0.0.0.0:80 ").unwrap(),
            "0.0.0.0:80".parse::<SocketAddr>().unwrap()
        );
        let err = ServerConfig::parse_addr("localhost:abc").unwrap_err();
        assert!(err.to_string().contains("localhost:abc"));
        assert!(!err.is_transient());
        assert_eq!(ServerConfig::default().addr.ip(), Ipv4Addr::LOCALHOST);
    }

    #[test]
    fn routes_are_exact() {
        assert_eq!(Route::of("/readyz"), Some(Route::Ready));
        assert_eq!(Route::of("/health"), Some(Route::Ready));
        assert_eq!(Route::of("/metrics/"), None);
        assert_eq!(Route::of("/../metrics"), None);
    }
}

//! The container and Railway health checks use liveness (`/healthz`), which stays 200 while a bot
//! correctly stands aside (kill switch engaged), where readiness (`/readyz`) is 503; and the build
//! context leaves build output, databases and secrets behind (issue 14, report 7).

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use domain::{FixedClock, Timestamp};
use observability::{
    ConnectionState, HttpServer, Metrics, ServerConfig, StatusConfig, StatusHandle,
};

fn repo_file(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The path the Dockerfile's HEALTHCHECK asks for.
fn dockerfile_health_path() -> String {
    let dockerfile = repo_file("deploy/Dockerfile");
    let at = dockerfile.find("HEALTHCHECK").expect("a HEALTHCHECK");
    let check = &dockerfile[at..];
    let check = &check[..check.find("\nENTRYPOINT").unwrap_or(check.len())];
    let start = check.find("${PORT}").expect("the check uses ${PORT}") + "${PORT}".len();
    let path: String = check[start..]
        .chars()
        .take_while(|c| *c != '"' && !c.is_whitespace())
        .collect();
    path
}

fn railway_health_path() -> String {
    let railway: toml::Table = repo_file("deploy/railway.toml").parse().unwrap();
    railway["deploy"]["healthcheckPath"]
        .as_str()
        .expect("a healthcheckPath")
        .to_owned()
}

#[test]
fn container_and_railway_check_liveness_not_readiness() {
    assert_eq!(dockerfile_health_path(), "/healthz");
    assert_eq!(railway_health_path(), "/healthz");
}

#[test]
fn the_build_context_leaves_output_databases_and_git_behind() {
    let ignore = repo_file(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for needed in ["target/", "data/", "*.db", "*.db-wal", ".git/", ".env"] {
        assert!(patterns.contains(&needed), "{needed} missing: {patterns:?}");
    }
    // The build needs the sources: none of them is ignored.
    for kept in ["crates", "proto", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !patterns.iter().any(|p| p.starts_with(kept)),
            "{kept} ignored"
        );
    }
}

/// A GET on the bot's HTTP server; the status code.
fn status_of(addr: std::net::SocketAddr, path: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {answer:?}"))
}

#[test]
fn the_checked_path_is_200_while_the_kill_switch_keeps_the_bot_out_of_the_market() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let clock = Arc::new(FixedClock::new(Timestamp(1_795_424_400_000)));
    let status = StatusHandle::new(StatusConfig::default(), clock.clone());
    // A healthy bot in every way but one: its kill switch is engaged.
    status.update(|s| {
        s.connection = ConnectionState::Authenticated;
        s.reconciled = true;
        s.store_writable = true;
        s.market_open = false;
        s.kill_switch.engaged = true;
        s.kill_switch.reason = Some("daily loss limit".to_owned());
    });
    let metrics = Arc::new(Metrics::new(clock).unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let addr = rt.block_on(async {
        let server = HttpServer::bind(
            ServerConfig::at("127.0.0.1:0".parse().unwrap()),
            metrics,
            status,
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        tokio::spawn(server.serve(async {
            let _ = stop_rx.await;
        }));
        addr
    });
    assert_eq!(
        status_of(addr, "/readyz"),
        503,
        "readiness reports the stand-aside"
    );
    assert_eq!(status_of(addr, &dockerfile_health_path()), 200);
    assert_eq!(status_of(addr, &railway_health_path()), 200);
    let _ = stop_tx.send(());
    rt.shutdown_timeout(Duration::from_secs(5));
}

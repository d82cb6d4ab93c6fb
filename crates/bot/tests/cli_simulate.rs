//! `palm-oil-bot simulate` as a script runs it: the built binary starts, prints the one line
//! that says where it listens and which CA to trust, serves a real TLS client, and stops cleanly on
//! SIGTERM or `--duration`; bad flags are named and exit with status 2.

// Test helpers: a panic is how they fail a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ctrader_client::{Broker, CTraderClient, CTraderConfig, Credentials, ExtraCa};
use domain::Secret;

const BIN: &str = env!("CARGO_BIN_EXE_palm-oil-bot");

/// Longest the simulator may take to print its start line.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Longest it may take to stop after SIGTERM or its duration.
const STOP_DEADLINE: Duration = Duration::from_secs(30);

const CLIENT_SECRET: &str = "flag-client-secret-8d1f";
const ACCESS_TOKEN: &str = "flag-access-token-52ab";
const REFRESH_TOKEN: &str = "flag-refresh-token-77c0";

/// A running `simulate` process: killed (by its id) if the test fails before it stops.
struct SimProcess {
    child: Option<Child>,
    first_line: mpsc::Receiver<String>,
    stdout_rest: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl SimProcess {
    fn start(dir: &Path, args: &[&str]) -> SimProcess {
        let mut child = Command::new(BIN)
            .env_clear()
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "pretty")
            .current_dir(dir)
            .arg("simulate")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (line_tx, first_line) = mpsc::channel();
        let (rest_tx, stdout_rest) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = line_tx.send(line);
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            let _ = rest_tx.send(rest);
        });
        let (err_tx, stderr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut all = String::new();
            let _ = stderr.read_to_string(&mut all);
            let _ = err_tx.send(all);
        });
        SimProcess {
            child: Some(child),
            first_line,
            stdout_rest,
            stderr: stderr_rx,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The start line, parsed: (address, CA file).
    fn ready(&mut self) -> (std::net::SocketAddr, PathBuf, String) {
        let line = match self.first_line.recv_timeout(START_DEADLINE) {
            Ok(line) => line,
            Err(_) => panic!("simulate printed nothing within {START_DEADLINE:?}"),
        };
        if line.is_empty() {
            let (status, _, stderr) = self.wait();
            panic!("simulate exited ({status:?}) before listening: {stderr}");
        }
        let rest = line
            .trim()
            .strip_prefix("simulator listening on ")
            .unwrap_or_else(|| panic!("unexpected start line {line:?}"));
        let mut words = rest.split(' ');
        let addr = words.next().unwrap().parse().expect("an address");
        let ca = words
            .find_map(|w| w.strip_prefix("ca="))
            .map(PathBuf::from)
            .expect("a ca= field");
        (addr, ca, line)
    }

    fn terminate(&self) {
        // Only the process this test started, by its id.
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits (bounded) for the exit; returns the status, the rest of stdout and stderr.
    fn wait(&mut self) -> (ExitStatus, String, String) {
        let mut child = self.child.take().expect("not waited yet");
        let deadline = Instant::now() + STOP_DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("simulate did not stop within {STOP_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = self
            .stdout_rest
            .recv_timeout(STOP_DEADLINE)
            .unwrap_or_default();
        let err = self.stderr.recv_timeout(STOP_DEADLINE).unwrap_or_default();
        (status, out, err)
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `credentials=` file the start line names: checked to be private, parsed as the
/// `NAME='value'` lines a shell sources.
fn client_env(line: &str) -> std::collections::BTreeMap<String, String> {
    let path = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("credentials="))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no credentials= field in {line:?}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is readable by others", path.display());
    }
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.split_once('=').expect("NAME=value");
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .expect("a single-quoted value")
                .replace("'\\''", "'");
            (name.to_owned(), value)
        })
        .collect()
}

fn arg(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

#[test]
fn serves_a_tls_client_that_trusts_the_printed_ca_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let mut sim = SimProcess::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--cert-dir",
            arg(&certs),
            "--symbol",
            "FCPO",
            "--market-hours",
            "always",
            "--speed",
            "60",
            "--client-id",
            "script-app",
            "--client-secret",
            CLIENT_SECRET,
            "--access-token",
            ACCESS_TOKEN,
            "--refresh-token",
            REFRESH_TOKEN,
            "--account-id",
            "9001",
            "--reply-delay-ms",
            "5",
        ],
    );
    let (addr, ca, line) = sim.ready();
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{line}");
    assert!(ca.is_absolute(), "the CA path is absolute: {line}");
    assert_eq!(ca, std::fs::canonicalize(certs.join("ca.pem")).unwrap());
    assert!(line.contains("account=9001"), "{line}");
    // Issue 14, report 10: the credentials a client needs are in a private file, not on screen.
    let env = client_env(&line);
    assert_eq!(env["CTRADER_CLIENT_SECRET"], CLIENT_SECRET);
    assert_eq!(env["CTRADER_ACCESS_TOKEN"], ACCESS_TOKEN);
    assert_eq!(env["CTRADER_REFRESH_TOKEN"], REFRESH_TOKEN);
    assert_eq!(env["CTRADER_CLIENT_ID"], "script-app");
    assert_eq!(env["CTRADER_ACCOUNT_ID"], "9001");
    assert_eq!(env["CTRADER_PORT"], addr.port().to_string());
    assert_eq!(env["CTRADER_HOST"], "localhost");
    assert_eq!(PathBuf::from(&env["CTRADER_CA_FILE"]), ca);
    assert_eq!(env["SYMBOL_CANDIDATES"], "FCPO");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spec = runtime.block_on(async {
        let mut config = CTraderConfig::new(
            "localhost",
            addr.port(),
            Credentials {
                client_id: "script-app".to_owned(),
                client_secret: Secret::new(CLIENT_SECRET),
                access_token: Secret::new(ACCESS_TOKEN),
                refresh_token: Some(Secret::new(REFRESH_TOKEN)),
            },
            9001,
        );
        config.extra_ca = Some(ExtraCa::PemFile(ca.clone()));
        let client = tokio::time::timeout(Duration::from_secs(30), CTraderClient::connect(config))
            .await
            .expect("connect within 30 s")
            .expect("the client authenticates against the simulator");
        let spec = tokio::time::timeout(
            Duration::from_secs(30),
            client.resolve_symbol(&["PALMOIL".to_owned(), "FCPO".to_owned()]),
        )
        .await
        .expect("symbol lookup within 30 s")
        .expect("the renamed palm oil symbol resolves");
        let open = tokio::time::timeout(Duration::from_secs(30), client.open_state())
            .await
            .expect("reconcile within 30 s")
            .expect("reconcile answers");
        assert!(open.positions.is_empty());
        client.shutdown();
        spec
    });
    assert_eq!(spec.name, "FCPO");

    // A client with the wrong secret is refused by the process, not just by the library.
    let refused = runtime.block_on(async {
        let mut config = CTraderConfig::new(
            "localhost",
            addr.port(),
            Credentials {
                client_id: "script-app".to_owned(),
                client_secret: Secret::new("not-the-secret"),
                access_token: Secret::new(ACCESS_TOKEN),
                refresh_token: None,
            },
            9001,
        );
        config.extra_ca = Some(ExtraCa::PemFile(ca.clone()));
        tokio::time::timeout(Duration::from_secs(30), CTraderClient::connect(config))
            .await
            .expect("answer within 30 s")
    });
    let err = match refused {
        Ok(_) => panic!("a wrong client secret was accepted"),
        Err(e) => e,
    };
    assert!(!err.is_transient(), "{err}");

    sim.terminate();
    let (status, out, err) = sim.wait();
    assert_eq!(status.code(), Some(0), "clean stop on SIGTERM: {err}");
    let everything = format!("{line}{out}{err}");
    for secret in [CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN] {
        assert!(!everything.contains(secret), "a secret was printed");
    }
    assert!(out.trim().is_empty(), "one line on stdout only: {out:?}");
    assert!(
        err.contains("spot events sent") && err.contains("0 pushed events missed"),
        "the stop summary on stderr: {err:?}"
    );
}

#[test]
fn stops_by_itself_after_its_duration_and_reuses_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--cert-dir",
        arg(&certs),
        "--duration",
        "1s",
        "--drop-every",
        "0.5",
        "--duplicate-executions",
    ];
    let mut first = SimProcess::start(dir.path(), &args);
    let (_, ca, _) = first.ready();
    let pem = std::fs::read(&ca).unwrap();
    let started = Instant::now();
    let (status, _, err) = first.wait();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(started.elapsed() < STOP_DEADLINE);

    // A restart in the same folder keeps the CA clients already trust.
    let mut second = SimProcess::start(dir.path(), &args);
    let (_, ca_again, _) = second.ready();
    assert_eq!(ca_again, ca);
    assert_eq!(std::fs::read(&ca_again).unwrap(), pem);
    let (status, _, err) = second.wait();
    assert_eq!(status.code(), Some(0), "{err}");
}

/// Issue 15: scheduled broker events fire once each, after their delay, with nobody connected,
/// and the simulator still stops cleanly at its duration.
#[test]
fn fires_scheduled_broker_events_and_stops_at_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let mut sim = SimProcess::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--cert-dir",
            arg(&certs),
            "--deposit",
            "1000@1s",
            "--margin-call",
            "2s",
            "--stop-out",
            "1s",
            "--duration",
            "4s",
        ],
    );
    sim.ready();
    let (status, _, err) = sim.wait();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(
        err.matches("scheduled broker event: deposit 1000").count(),
        1,
        "{err}"
    );
    assert_eq!(
        err.matches("scheduled broker event: margin call").count(),
        1,
        "{err}"
    );
    // With no position open a stop-out has nothing to close: said, not pretended.
    assert!(
        err.contains("scheduled broker event stop-out not carried out: no position is open"),
        "{err}"
    );
}

/// Runs `simulate` with `args` expecting it to refuse at once.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let mut all = vec!["--cert-dir", arg(&certs)];
    all.extend_from_slice(args);
    let mut sim = SimProcess::start(dir.path(), &all);
    let (status, out, err) = sim.wait();
    let first = sim.first_line.try_recv().unwrap_or_default();
    assert!(
        first.trim().is_empty() && out.trim().is_empty(),
        "nothing on stdout: {first}{out}"
    );
    (status.code(), err)
}

#[test]
fn bad_flags_are_named_with_exit_status_2() {
    let (code, err) = refused(&["--listen", "127.0.0.1:0", "--speed", "0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("speed"), "{err}");

    let (code, err) = refused(&["--listen", "0.0.0.0:0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("loopback"), "{err}");

    let (code, err) = refused(&["--listen", "127.0.0.1:0", "--reject-next-order", "no money"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("error code"), "{err}");

    let (code, err) = refused(&["--listen", "127.0.0.1:0", "--market-hours", "weekends"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("market hours"), "{err}");

    let (code, err) = refused(&["--listen", "127.0.0.1:0", "--prices", "/no/such/prices.csv"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("/no/such/prices.csv"), "{err}");

    let (code, err) = refused(&["--listen", "not-an-address"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--listen"), "{err}");

    let (code, err) = refused(&["--listen", "127.0.0.1:0", "--drop-every", "soon"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--drop-every"), "{err}");

    let (code, err) = refused(&["--listen", "127.0.0.1:0", "--deposit", "lots@1s"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--deposit"), "{err}");

    let (code, err) = refused(&["--listen", "127.0.0.1:0", "--client-secret", ""]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("client secret"), "{err}");
}

/// Issue 14, report 10: the README's `simulate` + `run` set-up, with the settings from the
/// simulator's `client.env`, trades (an order is sent) instead of waiting for market hours.
#[test]
fn run_with_the_simulators_client_env_trades_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let mut sim = SimProcess::start(
        dir.path(),
        &[
            "--listen",
            "127.0.0.1:0",
            "--cert-dir",
            arg(&certs),
            "--market-hours",
            "always",
            "--speed",
            "300",
            "--duration",
            "120s",
        ],
    );
    let (_, _, line) = sim.ready();
    let mut run = Command::new(BIN);
    run.env_clear()
        .envs(client_env(&line))
        .env("TIMEFRAME", "M1")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("bot.db").display()),
        )
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .current_dir(dir.path())
        .args(["run", "--duration", "90s"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = run.spawn().expect("the binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut log = String::new();
    let sent = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                log.push_str(&line);
                log.push('\n');
                if line.contains("order sent") {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };
    // Only the process this test started, by its id.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let stop = Instant::now() + STOP_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > stop {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(sent, "no order was sent:\n{log}");
    assert_eq!(status.code(), Some(0), "{log}");
    sim.terminate();
    let _ = sim.wait();
}

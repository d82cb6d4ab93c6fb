//! Running the built `palm-oil-bot` binary from a test: empty environment, a scratch directory,
//! and a deadline after which the run is killed and the test fails.

// Test helpers: a panic is how they fail a test; each test binary uses a different subset.
#![allow(clippy::expect_used, dead_code, unreachable_pub)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_palm-oil-bot");

/// Runs the binary with only `env` set (settings at their defaults otherwise) in `dir`, and
/// returns its output; a run still going after `deadline` is killed and fails the test.
pub fn run_bot<A, K, V>(dir: &Path, args: &[A], env: &[(K, V)], deadline: Duration) -> Output
where
    A: AsRef<OsStr> + std::fmt::Debug,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("the binary starts");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(deadline) {
        Ok(output) => output.expect("the binary's output is readable"),
        Err(_) => {
            // Only the process this test started, by its id.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("palm-oil-bot {args:?} did not finish within {deadline:?}");
        }
    }
}

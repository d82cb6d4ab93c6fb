//! Runs the benchmark's search (32 combinations × 100,000 M1 bars, repeated; or with `issue`,
//! the issue's 1,000 combinations) on N threads and prints the bar evaluations done, so a caller
//! can divide by the CPU time it measured (e.g. `/usr/bin/time`): bar evaluations per CPU-second
//! is the per-core speed, whatever else the machine runs.
//! Usage: `cargo run --release -p research --example throughput -- THREADS ROUNDS [issue]`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

#[path = "../benches/optimize.rs"]
#[allow(dead_code)]
mod bench;

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args.next().map_or(1, |a| a.parse().unwrap());
    let rounds: usize = args.next().map_or(5, |a| a.parse().unwrap());
    let (mut space, bars) = bench::set_up();
    if args.next().as_deref() == Some("issue") {
        space = bench::issue_grid();
    }
    let indices = space.indices(None);
    let started = std::time::Instant::now();
    let mut evaluations = 0_u64;
    for _ in 0..rounds {
        evaluations +=
            research::with_threads(Some(threads), || bench::run(&space, &indices, &bars)).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "threads={threads} combinations={} bar_evaluations={evaluations} wall_s={secs:.3}",
        indices.len()
    );
}

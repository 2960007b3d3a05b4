//! `portico-bench`: the benchmark harness. Its workloads arrive with the benchmark issue;
//! until then it only says so, so nobody mistakes it for a measurement.

fn main() -> std::process::ExitCode {
    eprintln!("portico-bench has no workloads yet (see the benchmark issue); nothing was measured");
    std::process::ExitCode::from(2)
}

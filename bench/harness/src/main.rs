//! alertflow-bench: the measuring half of the benchmark (`bench/run.sh` is the other half,
//! which starts and stops the servers).
//!
//! - `load`: sends Alertmanager deliveries (or GETs) and serves the sink the workflows post to;
//!   prints one JSON object with throughput and latency.
//! - `wait-ready`: times a server's start until a URL answers.
//! - `relay`: the end-to-end flow with no store and no engine, the ceiling for end to end.
//! - `report`: the table, `bench/RESULTS.md` and the SVG chart from a run's records.
//!
//! Exit status: 0 when everything was complete, 1 when the run finished but something was
//! missing (its JSON says what), 2 when it could not run.

mod bodies;
mod chart;
mod load;
mod pacing;
mod ready;
mod relay;
mod report;
mod sink;
mod stats;
mod wire;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(about = "Load generator, sink, start-up timer and report for the alertflow benchmark")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Send deliveries and report throughput and latency as JSON
    Load(load::LoadArgs),
    /// Wait until a server answers and print how long its start took, as JSON
    WaitReady(ready::ReadyArgs),
    /// Print the table and write the Markdown report and the SVG chart
    Report(report::ReportArgs),
    /// Serve the end-to-end flow with no store and no engine: the ceiling for end to end
    Relay(relay::RelayArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Load(args) => load::main(args),
        Command::WaitReady(args) => ready::main(args),
        Command::Report(args) => report::main(args),
        Command::Relay(args) => relay::main(args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("alertflow-bench: {e}");
            ExitCode::from(2)
        }
    }
}

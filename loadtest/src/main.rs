//! `loadtest`: see `loadtest/README.md`.

use std::process::ExitCode;

use clap::Parser;
use loadtest::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    if let loadtest::cli::Scenario::CeilingServer = cli.scenario {
        return match runtime.block_on(loadtest::fanout::serve_until_stdin_closes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: ceiling server: {e}");
                ExitCode::from(2)
            }
        };
    }
    match runtime.block_on(loadtest::run(cli.scenario)) {
        Ok(report) => {
            print!("{}", report.table());
            if report.breaches.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

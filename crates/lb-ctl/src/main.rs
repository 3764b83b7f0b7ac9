//! `lb-ctl`: the director's command line, ipvsadm-compatible.
//!
//! `lb-ctl -L -n [--stats|--thresholds] [--exact]` lists services as `ipvsadm`
//! does; `lb-ctl status` shows the director's own counters. Every error is one line
//! on stderr and a non-zero exit.

mod client;
mod format;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lb_core::api::{Command, Response};
use lb_core::config::DEFAULT_SOCKET;

use crate::format::ListFormat;

/// Command line of lb-ctl.
#[derive(Debug, Parser)]
#[command(
    name = "lb-ctl",
    version,
    about = "Control the lb-director load balancer (ipvsadm-compatible)"
)]
struct Cli {
    /// The director's control socket.
    #[arg(long, env = "LB_CTL_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// List the virtual server table (ipvsadm -L).
    #[arg(short = 'L', long = "list")]
    list: bool,
    /// Same as -L.
    #[arg(short = 'l')]
    list_lower: bool,
    /// Numeric output (addresses are always numeric; accepted for ipvsadm compatibility).
    #[arg(short = 'n', long = "numeric")]
    numeric: bool,
    /// Show traffic counters (implies -L).
    #[arg(long)]
    stats: bool,
    /// Show connection thresholds.
    #[arg(long)]
    thresholds: bool,
    /// Print exact numbers, without K/M/G.
    #[arg(long)]
    exact: bool,
    /// Print the director's answer as JSON.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Director status: per-worker counters, drops by reason, ports.
    Status,
    /// Re-read the director's configuration file and apply it atomically
    /// (an invalid file is rejected whole; the running configuration stays).
    Reload,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("lb-ctl: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<String, String> {
    let command = match (
        &cli.command,
        cli.list || cli.list_lower || cli.stats || cli.thresholds,
    ) {
        (Some(Sub::Status), _) => Command::Status,
        (Some(Sub::Reload), _) => Command::Reload,
        (None, true) => Command::ListServices,
        (None, false) => return Err("no command given (try -L -n, or --help)".into()),
    };
    let response = client::call(&cli.socket, command)?;
    if cli.json {
        return serde_json::to_string_pretty(&response)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string());
    }
    match response {
        Response::Error { message } => Err(message),
        Response::Services {
            conn_capacity,
            services,
        } => {
            let format = if cli.stats {
                ListFormat::Stats
            } else if cli.thresholds {
                ListFormat::Thresholds
            } else {
                ListFormat::Plain
            };
            Ok(format::list(conn_capacity, &services, format, cli.exact))
        }
        Response::Status(status) => Ok(format::status(&status)),
        Response::Reloaded { generation } => {
            Ok(format!("configuration generation {generation} in force\n"))
        }
    }
}

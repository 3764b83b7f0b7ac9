//! `lb-ctl`: the director's command line, ipvsadm-compatible.
//!
//! `lb-ctl -A -t VIP:PORT -s wlc`, `-a … -r RIP -m -w 2`, `-L -n [--stats|--rate|
//! --thresholds|--timeout|-c] [--exact]`, `-S -n`, `-R`, `-Z`, `--set`, and DPVS's
//! `--add-laddr/--del-laddr/--get-laddr`; or the subcommand form for scripts
//! (`lb-ctl service add tcp VIP:PORT …`, `lb-ctl --json list --stats`). Every
//! error is one line on stderr and a non-zero exit; a rejected change changed
//! nothing.

mod cli;
mod client;
mod format;

use std::io::Read;
use std::process::ExitCode;

use lb_core::api::{Command, Edit, Response};

use crate::cli::{Action, Invocation, ParseError};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let invocation = match cli::parse(&args) {
        Ok(i) => i,
        Err(ParseError::Exit(e)) => e.exit(),
        Err(ParseError::Message(m)) => {
            eprintln!("lb-ctl: {m}");
            return ExitCode::from(2);
        }
    };
    match run(&invocation) {
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

fn run(inv: &Invocation) -> Result<String, String> {
    let call = |command| client::call(&inv.socket, command);
    let json = |response: &Response| -> Result<String, String> {
        serde_json::to_string_pretty(response)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string())
    };
    match &inv.action {
        Action::Restore { input, replace } => {
            let text = match input {
                Some(path) => {
                    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?
                }
                None => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .map_err(|e| format!("reading the rules from stdin: {e}"))?;
                    text
                }
            };
            let (mut edits, mut lines) = cli::parse_rules(&text)?;
            if *replace {
                edits.insert(0, Edit::Clear);
                lines.insert(0, 0);
            }
            let response = call(Command::Apply { edits })?;
            match response {
                Response::Error {
                    message,
                    edit: Some(i),
                } if lines.get(i).is_some_and(|l| *l > 0) => Err(format!(
                    "line {}: {message}; nothing was restored",
                    lines[i]
                )),
                Response::Error { message, .. } => Err(format!("{message}; nothing was restored")),
                r if inv.json => json(&r),
                _ => Ok(String::new()),
            }
        }
        action => {
            let command = match action {
                Action::List(_) => Command::ListServices,
                Action::Connections { service } => Command::ListConnections {
                    service: *service,
                    limit: None,
                },
                Action::Timeouts | Action::Save | Action::LocalAddresses | Action::ShowConfig => {
                    Command::GetConfig
                }
                Action::Apply(edits) => Command::Apply {
                    edits: edits.clone(),
                },
                Action::Zero(service) => Command::Zero { service: *service },
                Action::Status => Command::Status,
                Action::Reload => Command::Reload,
                Action::Restore { .. } => unreachable!("handled above"),
            };
            let response = call(command)?;
            if let Response::Error { message, .. } = response {
                return Err(message);
            }
            if inv.json {
                return json(&response);
            }
            render(action, response)
        }
    }
}

/// The text for a successful response.
fn render(action: &Action, response: Response) -> Result<String, String> {
    Ok(match (action, response) {
        (
            Action::List(spec),
            Response::Services {
                conn_capacity,
                mut services,
            },
        ) => {
            if let Some(key) = spec.service {
                services.retain(|s| {
                    (s.protocol, s.address, s.port) == (key.protocol, key.address, key.port)
                });
                if services.is_empty() {
                    return Err(format!("no service {key}"));
                }
            }
            if !spec.nosort {
                format::sort_services(&mut services);
            }
            format::list(
                conn_capacity,
                &services,
                spec.format,
                spec.exact,
                spec.service.is_none(),
            )
        }
        (Action::Connections { .. }, Response::Connections { connections }) => {
            format::connections(&connections)
        }
        (Action::Timeouts, Response::Config { config }) => format::timeouts(&config),
        (Action::Save, Response::Config { config }) => format::save(&config),
        (Action::LocalAddresses, Response::Config { config }) => format::local_addresses(&config),
        (Action::ShowConfig, Response::Config { config }) => {
            serde_yaml_ng::to_string(&*config).map_err(|e| e.to_string())?
        }
        (Action::Status, Response::Status(status)) => format::status(&status),
        (Action::Reload, Response::Reloaded { generation }) => {
            format!("configuration generation {generation} in force\n")
        }
        (Action::Apply(_) | Action::Zero(_), _) => String::new(),
        (_, other) => {
            return Err(format!(
                "unexpected answer from the director: {}",
                serde_json::to_string(&other).unwrap_or_default()
            ))
        }
    })
}

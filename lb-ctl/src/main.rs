//! `lb-ctl`: the director's command line, ipvsadm-compatible.
//!
//! `lb-ctl -A -t VIP:PORT -s wlc`, `-a … -r RIP -m -w 2`, `-L -n [--stats|--rate|
//! --thresholds|--timeout|-c] [--exact]`, `-S -n`, `-R`, `-Z`, `--set`, and DPVS's
//! `--add-laddr/--del-laddr/--get-laddr`; or the subcommand form for scripts
//! (`lb-ctl service add tcp VIP:PORT …`, `lb-ctl --json list --stats`). Every
//! error is one line on stderr and a non-zero exit; a rejected change changed
//! nothing. Exit codes: 0 success, 1 refused by the director, 2 usage error
//! (found before anything is sent), 3 the director cannot be reached.

mod cli;
mod client;
mod format;

use std::io::Read;
use std::process::ExitCode;

use lb_config::api::{Command, Edit, Response};

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
        Err(failure) => {
            eprintln!("lb-ctl: {}", failure.message());
            ExitCode::from(failure.code())
        }
    }
}

/// Why a run failed, which decides the exit code.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Refused by the director (a validation error, an unknown service…): 1.
    Refused(String),
    /// Bad arguments or input, found before anything was sent: 2.
    Usage(String),
    /// The director cannot be reached: 3.
    Unreachable(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Refused(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Unreachable(_) => 3,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Refused(m) | Failure::Usage(m) | Failure::Unreachable(m) => m,
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Refused(message)
    }
}

impl From<client::CallError> for Failure {
    fn from(e: client::CallError) -> Self {
        match e {
            client::CallError::Unreachable(m) => Failure::Unreachable(m),
            client::CallError::Garbled(m) => Failure::Refused(m),
        }
    }
}

fn run(inv: &Invocation) -> Result<String, Failure> {
    let call = |command| client::call(&inv.socket, command).map_err(Failure::from);
    let json = |response: &Response| -> Result<String, String> {
        serde_json::to_string_pretty(response)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string())
    };
    match &inv.action {
        Action::Restore { input, replace } => {
            let text = match input {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?,
                None => {
                    let mut text = String::new();
                    std::io::stdin().read_to_string(&mut text).map_err(|e| {
                        Failure::Usage(format!("reading the rules from stdin: {e}"))
                    })?;
                    text
                }
            };
            let (mut edits, mut lines) = cli::parse_rules(&text).map_err(Failure::Usage)?;
            if *replace {
                edits.insert(0, Edit::Clear);
                lines.insert(0, 0);
            }
            let response = call(Command::Apply { edits })?;
            match response {
                Response::Error {
                    message,
                    edit: Some(i),
                } if lines.get(i).is_some_and(|l| *l > 0) => Err(Failure::Refused(format!(
                    "line {}: {message}; nothing was restored",
                    lines[i]
                ))),
                Response::Error { message, .. } => {
                    Err(Failure::Refused(format!("{message}; nothing was restored")))
                }
                r if inv.json => Ok(json(&r)?),
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
                return Err(Failure::Refused(message));
            }
            if inv.json {
                return Ok(json(&response)?);
            }
            Ok(render(action, response)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        std::iter::once("lb-ctl")
            .chain(line.split_whitespace())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_negative_weight_is_a_usage_error_naming_the_field() {
        match cli::parse(&args("-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1")) {
            Err(ParseError::Message(m)) => {
                assert_eq!(m, "weight: -1 is not a valid weight (0..65535)")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_director_exits_3() {
        let dir = std::env::temp_dir().join(format!("lb-ctl-test-{}", std::process::id()));
        let socket = dir.join("absent.sock");
        let line = format!("--socket {} -S -n", socket.display());
        let inv = cli::parse(&args(&line)).unwrap();
        let failure = run(&inv).unwrap_err();
        assert_eq!(failure.code(), 3, "{failure:?}");
        assert!(failure
            .message()
            .starts_with("cannot connect to the director at "));
    }

    #[test]
    fn unreadable_restore_input_is_a_usage_error() {
        let line = "--socket /nonexistent/ctl.sock restore /nonexistent/rules";
        let inv = cli::parse(&args(line)).unwrap();
        assert_eq!(run(&inv).unwrap_err().code(), 2);
    }
}

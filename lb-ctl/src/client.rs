//! Talking to the director over its Unix control socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use lb_config::api::{Command, Request, Response, VERSION};

/// Why a call failed.
#[derive(Debug, PartialEq, Eq)]
pub enum CallError {
    /// The director could not be reached or did not answer in time (exit 3).
    Unreachable(String),
    /// The director answered something this lb-ctl cannot read (exit 1).
    Garbled(String),
}

/// Sends `command` and returns the director's response; errors are one line.
pub fn call(socket: &Path, command: Command) -> Result<Response, CallError> {
    let unreachable = CallError::Unreachable;
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        unreachable(format!(
            "cannot connect to the director at {}: {e}",
            socket.display()
        ))
    })?;
    let timeout = Some(Duration::from_secs(10));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| unreachable(format!("control socket: {e}")))?;
    let request = Request {
        version: VERSION,
        command,
    };
    let mut line = serde_json::to_string(&request)
        .map_err(|e| CallError::Garbled(format!("encoding request: {e}")))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .map_err(|e| unreachable(format!("sending request: {e}")))?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .map_err(|e| unreachable(format!("reading response: {e}")))?;
    if reply.is_empty() {
        return Err(unreachable(
            "the director closed the connection without answering".into(),
        ));
    }
    serde_json::from_str(&reply)
        .map_err(|e| CallError::Garbled(format!("malformed response from the director: {e}")))
}

#[cfg(test)]
mod tests {
    use lb_config::api::{
        Command, ConnView, Edit, Mapping, Request, Response, ServiceKey, VERSION,
    };
    use lb_config::{Config, RealServerConfig, ServiceConfig};
    use lb_core::service::{ForwardMode, Protocol};

    fn key() -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            address: "10.0.1.100".parse().unwrap(),
            port: 80,
        }
    }

    /// Every command survives the trip through the wire format (JSON, the
    /// command flattened next to the version).
    #[test]
    fn requests_travel_as_json() {
        let set: Mapping = serde_yaml_ng::from_str("{weight: 3, forward: null}").unwrap();
        let commands = vec![
            Command::ListServices,
            Command::Status,
            Command::Reload,
            Command::GetConfig,
            Command::Zero { service: None },
            Command::Zero {
                service: Some(key()),
            },
            Command::ListConnections {
                service: Some(key()),
                limit: Some(10),
            },
            Command::Apply {
                edits: vec![
                    Edit::AddService {
                        service: ServiceConfig::with_defaults(
                            Protocol::Udp,
                            "10.0.1.100".parse().unwrap(),
                            53,
                        ),
                    },
                    Edit::AddRealServer {
                        service: key(),
                        server: RealServerConfig::with_defaults("10.0.2.11".parse().unwrap()),
                    },
                    Edit::EditRealServer {
                        service: key(),
                        address: "10.0.2.11".parse().unwrap(),
                        port: Some(8080),
                        set,
                    },
                    Edit::Clear,
                    Edit::SetTimeouts {
                        tcp: 1,
                        tcpfin: 0,
                        udp: 2,
                    },
                ],
            },
        ];
        for command in commands {
            let request = Request {
                version: VERSION,
                command,
            };
            let text = serde_json::to_string(&request).unwrap();
            let back: Request = serde_json::from_str(&text).unwrap();
            assert_eq!(back, request, "{text}");
        }
        // The documented shapes.
        let text = r#"{"version":1,"command":"apply","edits":[{"edit":"delete_service","service":{"protocol":"tcp","address":"10.0.1.100","port":80}},{"edit":"clear"}]}"#;
        let r: Request = serde_json::from_str(text).unwrap();
        assert_eq!(
            r.command,
            Command::Apply {
                edits: vec![Edit::DeleteService { service: key() }, Edit::Clear]
            }
        );
        // The example of docs/control-protocol.md.
        let doc = r#"{"version":1,"command":"apply","edits":[
  {"edit":"add_service","service":{"address":"10.0.1.100","port":443,"protocol":"tcp","scheduler":"rr"}},
  {"edit":"add_real_server","service":{"protocol":"tcp","address":"10.0.1.100","port":443},
   "server":{"address":"10.0.2.11","weight":2,"forward":"fullnat"}},
  {"edit":"edit_real_server","service":{"protocol":"tcp","address":"10.0.1.100","port":80},
   "address":"10.0.2.12","set":{"weight":0}}]}"#;
        let r: Request = serde_json::from_str(doc).unwrap();
        let Command::Apply { edits } = r.command else {
            panic!("{r:?}")
        };
        assert!(matches!(&edits[1], Edit::AddRealServer { server, .. } if server.weight == 2));
        let r: Request = serde_json::from_str(r#"{"version":1,"command":"zero"}"#).unwrap();
        assert_eq!(r.command, Command::Zero { service: None });
    }

    #[test]
    fn responses_travel_as_json() {
        let config = Config::from_yaml(
            "ports: [{name: c, device: d0, address: 10.0.1.1/24}]\ncontrol: {metrics: '127.0.0.1:9100'}\n",
        )
        .unwrap();
        let responses = vec![
            Response::error("no"),
            Response::Error {
                message: "bad".into(),
                edit: Some(3),
            },
            Response::Applied { generation: 9 },
            Response::Zeroed,
            Response::Connections {
                connections: vec![ConnView {
                    protocol: Protocol::Tcp,
                    state: "ESTABLISHED".into(),
                    expires_ms: 899_000,
                    client: "10.0.1.2:40000".parse().unwrap(),
                    virtual_address: "10.0.1.100:80".parse().unwrap(),
                    local: "10.0.2.100:1025".parse().unwrap(),
                    destination: "10.0.2.11:80".parse().unwrap(),
                    forward: ForwardMode::FullNat,
                    worker: 1,
                }],
            },
            Response::Config {
                config: Box::new(config),
            },
        ];
        for response in responses {
            let text = serde_json::to_string(&response).unwrap();
            let back: Response = serde_json::from_str(&text).unwrap();
            assert_eq!(back, response, "{text}");
        }
        assert_eq!(
            serde_json::to_string(&Response::error("x")).unwrap(),
            r#"{"result":"error","message":"x"}"#
        );
    }
}

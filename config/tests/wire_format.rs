//! The written forms of the configuration and of the control protocol, against
//! files written by the director before lb-core lost its serde derives: the YAML
//! that `lb-ctl` prints and the JSON on the control socket must not change.
//!
//! `every-field.yaml` sets every field to something other than its default;
//! `*.written.*` and `protocol.jsonl` are what serde made of it then.

use lb_config::api::{
    Command, ConnView, Edit, Mapping, Rates, RealServerView, Request, Response, ServiceKey,
    ServiceView, VERSION,
};
use lb_config::Config;
use lb_core::service::{ForwardMode, Protocol, TrafficTotals};

fn wire_file(name: &str) -> String {
    let path = format!("{}/tests/wire/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn every_field() -> Config {
    Config::from_yaml(&wire_file("every-field.yaml")).unwrap()
}

#[test]
fn the_configuration_is_written_as_before() {
    let config = every_field();
    assert_eq!(
        serde_yaml_ng::to_string(&config).unwrap(),
        wire_file("every-field.written.yaml")
    );
    assert_eq!(
        serde_json::to_string_pretty(&config).unwrap(),
        wire_file("every-field.written.json")
    );
}

#[test]
fn the_written_configuration_reads_back_the_same() {
    let config = every_field();
    let yaml = Config::from_yaml(&wire_file("every-field.written.yaml")).unwrap();
    assert_eq!(yaml, config);
    let json: Config = serde_json::from_str(&wire_file("every-field.written.json")).unwrap();
    assert_eq!(json, config);
}

fn messages(config: &Config) -> (Vec<Request>, Vec<Response>) {
    let key = ServiceKey {
        protocol: Protocol::Udp,
        address: "10.0.1.100".parse().unwrap(),
        port: 53,
    };
    let totals = TrafficTotals {
        conns: 1,
        in_packets: 2,
        out_packets: 3,
        in_bytes: 4,
        out_bytes: 5,
    };
    let rates = Rates {
        cps: 6,
        in_pps: 7,
        out_pps: 8,
        in_bps: 9,
        out_bps: 10,
    };
    let mut set = Mapping::new();
    set.insert("weight".into(), 3.into());
    set.insert("forward".into(), "nat".into());
    let rs = "10.0.2.11".parse().unwrap();
    let lip = "10.0.2.101".parse().unwrap();
    let request = |command| Request {
        version: VERSION,
        command,
    };
    let requests = vec![
        request(Command::ListServices),
        request(Command::Zero { service: Some(key) }),
        request(Command::ListConnections {
            service: None,
            limit: Some(5),
        }),
        request(Command::Apply {
            edits: vec![
                Edit::AddService {
                    service: config.services[0].clone(),
                },
                Edit::EditService {
                    service: key,
                    set: set.clone(),
                },
                Edit::DeleteService { service: key },
                Edit::Clear,
                Edit::AddRealServer {
                    service: key,
                    server: config.services[0].real_servers[1].clone(),
                },
                Edit::EditRealServer {
                    service: key,
                    address: rs,
                    port: Some(8080),
                    set,
                },
                Edit::DeleteRealServer {
                    service: key,
                    address: rs,
                    port: None,
                },
                Edit::SetTimeouts {
                    tcp: 1,
                    tcpfin: 2,
                    udp: 3,
                },
                Edit::SetTimeout {
                    state: "time_wait".into(),
                    seconds: 4,
                },
                Edit::AddLocalAddress {
                    address: lip,
                    port: None,
                },
                Edit::DeleteLocalAddress { address: lip },
            ],
        }),
    ];
    let responses = vec![
        Response::error("no"),
        Response::Error {
            message: "bad".into(),
            edit: Some(2),
        },
        Response::Services {
            conn_capacity: 9,
            services: vec![ServiceView {
                protocol: Protocol::Tcp,
                address: "10.0.1.100".parse().unwrap(),
                port: 80,
                scheduler: "wrr".into(),
                scheduler_flags: vec!["x".into()],
                persistence: Some(5),
                persistence_prefix: 24,
                stats: totals,
                rates,
                real_servers: vec![RealServerView {
                    address: rs,
                    port: 80,
                    forward: ForwardMode::FullNat,
                    weight: 1,
                    upper_threshold: 2,
                    lower_threshold: 3,
                    active: 4,
                    inactive: 5,
                    stats: totals,
                    rates,
                }],
            }],
        },
        Response::Connections {
            connections: vec![ConnView {
                protocol: Protocol::Udp,
                state: "UDP".into(),
                expires_ms: 1,
                client: "10.0.1.2:1000".parse().unwrap(),
                virtual_address: "10.0.1.100:53".parse().unwrap(),
                local: "10.0.2.100:2000".parse().unwrap(),
                destination: "10.0.2.11:53".parse().unwrap(),
                forward: ForwardMode::Tunnel,
                worker: 1,
            }],
        },
        Response::Reloaded { generation: 3 },
        Response::Applied { generation: 4 },
        Response::Zeroed,
        Response::Config {
            config: Box::new(config.clone()),
        },
    ];
    (requests, responses)
}

#[test]
fn protocol_messages_are_written_and_read_as_before() {
    let (requests, responses) = messages(&every_field());
    let expected = wire_file("protocol.jsonl");
    let mut lines = expected.lines();
    for r in &requests {
        let line = lines.next().expect("a line per request");
        assert_eq!(serde_json::to_string(r).unwrap(), line);
        assert_eq!(&serde_json::from_str::<Request>(line).unwrap(), r);
    }
    for r in &responses {
        let line = lines.next().expect("a line per response");
        assert_eq!(serde_json::to_string(r).unwrap(), line);
        assert_eq!(&serde_json::from_str::<Response>(line).unwrap(), r);
    }
    assert_eq!(lines.next(), None);
}

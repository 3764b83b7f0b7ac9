//! Runtime edits of the configuration (`lb-ctl`, ipvsadm `-A/-E/-D/-a/-e/-d/-C`,
//! `--set`, local addresses).
//!
//! The control thread keeps the desired [`Config`] as the source of truth. An edit
//! request is applied to a copy: every edit in order, then the whole result is
//! validated; only a copy that passes replaces the running configuration, so a
//! batch (an ipvsadm restore) is all or nothing.
//!
//! Settings are changed by their YAML names through serde (a `set` map merged into
//! the serialised object and read back), so every field of the file can be edited
//! at run time without this module knowing it, and a misspelt name is refused with
//! serde's "unknown field" message.

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};

use lb_core::service::{ForwardMode, Protocol};

use crate::api::{Edit, ServiceKey};
use crate::forms::TimeoutsValue;
use crate::model::{Config, ConfigError, LocalAddressConfig, RealServerConfig, ServiceConfig};

impl ServiceConfig {
    /// The service's identity.
    pub fn key(&self) -> ServiceKey {
        ServiceKey {
            protocol: self.protocol,
            address: self.address,
            port: self.port,
        }
    }

    /// A service with every setting at its default (the YAML file's defaults).
    pub fn with_defaults(protocol: Protocol, address: IpAddr, port: u16) -> ServiceConfig {
        let mut m = Mapping::new();
        m.insert("address".into(), address.to_string().into());
        m.insert("port".into(), port.into());
        m.insert("protocol".into(), protocol_name(protocol).into());
        // Through serde, so that fields added later get their defaults here too.
        serde_yaml_ng::from_value(Value::Mapping(m))
            .unwrap_or_else(|e| unreachable!("a service with only its key must parse: {e}"))
    }

    /// Whether `address:port` names real server `rs` of this service (`port`
    /// absent = the virtual port).
    pub fn is_real_server(
        &self,
        rs: &RealServerConfig,
        address: IpAddr,
        port: Option<u16>,
    ) -> bool {
        rs.address == address && rs.port.unwrap_or(self.port) == port.unwrap_or(self.port)
    }
}

impl RealServerConfig {
    /// A real server with every setting at its default.
    pub fn with_defaults(address: IpAddr) -> RealServerConfig {
        let mut m = Mapping::new();
        m.insert("address".into(), address.to_string().into());
        serde_yaml_ng::from_value(Value::Mapping(m))
            .unwrap_or_else(|e| unreachable!("a real server with only its address must parse: {e}"))
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// Why a batch of edits was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditError {
    /// The index of the edit that failed; `None` when every edit applied but the
    /// result is not a valid configuration.
    pub edit: Option<usize>,
    /// One line.
    pub message: String,
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EditError {}

impl Config {
    /// The index of the service `key`.
    pub fn service_index(&self, key: &ServiceKey) -> Option<usize> {
        self.services.iter().position(|s| s.key() == *key)
    }

    /// Applies `edits` in order and validates the result; on any error `self` is
    /// left as it was.
    pub fn apply_edits(&mut self, edits: &[Edit]) -> Result<(), EditError> {
        let mut next = self.clone();
        for (i, edit) in edits.iter().enumerate() {
            next.apply_edit(edit).map_err(|message| EditError {
                edit: Some(i),
                message,
            })?;
        }
        next.validate().map_err(|e| EditError {
            edit: None,
            message: next.describe_error(&e),
        })?;
        *self = next;
        Ok(())
    }

    /// Applies one edit without validating the whole; the message says what is
    /// wrong in ipvsadm's terms.
    pub fn apply_edit(&mut self, edit: &Edit) -> Result<(), String> {
        match edit {
            Edit::AddService { service } => {
                if self.service_index(&service.key()).is_some() {
                    return Err(format!("service {} already exists", service.key()));
                }
                self.services.push(service.clone());
            }
            Edit::EditService { service, set } => {
                let i = self.find_service(service)?;
                let svc = &mut self.services[i];
                *svc = patch(svc, set, &["address", "port", "protocol", "real_servers"])
                    .map_err(|e| format!("service {service}: {e}"))?;
            }
            Edit::DeleteService { service } => {
                let i = self.find_service(service)?;
                self.services.remove(i);
            }
            Edit::Clear => self.services.clear(),
            Edit::AddRealServer { service, server } => {
                let i = self.find_service(service)?;
                let svc = &mut self.services[i];
                if svc
                    .real_servers
                    .iter()
                    .any(|rs| svc.is_real_server(rs, server.address, server.port))
                {
                    return Err(format!(
                        "real server {} already exists in service {service}",
                        endpoint(server.address, server.port.unwrap_or(svc.port))
                    ));
                }
                let mut server = server.clone();
                // The director does not rewrite ports for direct routing and
                // tunnels: such a server listens on the virtual port (ipvsadm
                // forces it too).
                let forward = server.forward.unwrap_or(svc.forward);
                if matches!(forward, ForwardMode::Dr | ForwardMode::Tunnel) {
                    server.port = None;
                }
                svc.real_servers.push(server);
            }
            Edit::EditRealServer {
                service,
                address,
                port,
                set,
            } => {
                let (i, j) = self.find_real_server(service, *address, *port)?;
                let rs = &mut self.services[i].real_servers[j];
                *rs = patch(rs, set, &["address", "port"]).map_err(|e| {
                    format!(
                        "service {service}, real server {}: {e}",
                        endpoint(*address, port.unwrap_or(service.port))
                    )
                })?;
            }
            Edit::DeleteRealServer {
                service,
                address,
                port,
            } => {
                let (i, j) = self.find_real_server(service, *address, *port)?;
                self.services[i].real_servers.remove(j);
            }
            Edit::SetTimeouts { tcp, tcpfin, udp } => {
                if *tcp > 0 {
                    self.timeouts.established = *tcp;
                }
                if *tcpfin > 0 {
                    self.timeouts.fin_wait = *tcpfin;
                }
                if *udp > 0 {
                    self.timeouts.udp = *udp;
                }
            }
            Edit::SetTimeout { state, seconds } => {
                let name = match state.as_str() {
                    "tcp" => "established",
                    "tcpfin" => "fin_wait",
                    other => other,
                };
                let mut set = Mapping::new();
                set.insert(name.into(), (*seconds).into());
                let timeouts = TimeoutsValue(self.timeouts.clone());
                self.timeouts = patch(&timeouts, &set, &[])
                    .map_err(|e| format!("timeouts: {e}"))?
                    .0;
            }
            Edit::AddLocalAddress { address, port } => {
                if self.local_addresses.iter().any(|l| l.address == *address) {
                    return Err(format!("local address {address} already exists"));
                }
                let port = match port {
                    Some(name) => {
                        if self.port_index(name).is_none() {
                            return Err(format!("no port named '{name}'"));
                        }
                        name.clone()
                    }
                    None => self.port_for(*address).ok_or_else(|| {
                        format!(
                            "local address {address} is in no port's subnet: name the port \
                             (--ifname)"
                        )
                    })?,
                };
                self.local_addresses.push(LocalAddressConfig {
                    address: *address,
                    port,
                });
            }
            Edit::DeleteLocalAddress { address } => {
                let i = self
                    .local_addresses
                    .iter()
                    .position(|l| l.address == *address)
                    .ok_or_else(|| format!("no local address {address}"))?;
                self.local_addresses.remove(i);
            }
        }
        Ok(())
    }

    fn find_service(&self, key: &ServiceKey) -> Result<usize, String> {
        self.service_index(key)
            .ok_or_else(|| format!("no service {key}"))
    }

    fn find_real_server(
        &self,
        key: &ServiceKey,
        address: IpAddr,
        port: Option<u16>,
    ) -> Result<(usize, usize), String> {
        let i = self.find_service(key)?;
        let svc = &self.services[i];
        let j = svc
            .real_servers
            .iter()
            .position(|rs| svc.is_real_server(rs, address, port))
            .ok_or_else(|| {
                format!(
                    "no real server {} in service {key}",
                    endpoint(address, port.unwrap_or(key.port))
                )
            })?;
        Ok((i, j))
    }

    /// The name of the port whose subnet holds `address`.
    fn port_for(&self, address: IpAddr) -> Option<String> {
        let IpAddr::V4(v4) = address else {
            return None;
        };
        self.interfaces()
            .into_iter()
            .find(|p| p.address.contains(v4))
            .map(|p| p.name)
    }

    /// A validation error in terms of services and real servers rather than list
    /// indices: `services[1].real_servers[0].forward: …` becomes
    /// `service TCP 10.0.1.100:80, real server 10.0.2.11:80: forward: …`.
    pub fn describe_error(&self, e: &ConfigError) -> String {
        let Some(rest) = e.field.strip_prefix("services[") else {
            return e.to_string();
        };
        let Some((index, rest)) = rest.split_once(']') else {
            return e.to_string();
        };
        let Some(svc) = index
            .parse::<usize>()
            .ok()
            .and_then(|i| self.services.get(i))
        else {
            return e.to_string();
        };
        let mut out = format!("service {}", svc.key());
        let mut rest = rest.strip_prefix('.').unwrap_or(rest);
        if let Some(r) = rest.strip_prefix("real_servers[") {
            if let Some((j, after)) = r.split_once(']') {
                if let Some(rs) = j
                    .parse::<usize>()
                    .ok()
                    .and_then(|j| svc.real_servers.get(j))
                {
                    out.push_str(&format!(
                        ", real server {}",
                        endpoint(rs.address, rs.port.unwrap_or(svc.port))
                    ));
                    rest = after.strip_prefix('.').unwrap_or(after);
                }
            }
        }
        if !rest.is_empty() {
            out.push_str(": ");
            out.push_str(rest);
        }
        out.push_str(": ");
        out.push_str(&e.problem);
        out
    }
}

fn endpoint(address: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(address, port).to_string()
}

/// `value` with the fields of `set` replaced (by their serde names); `protected`
/// fields cannot be set. The result goes through the type's own deserialisation,
/// so unknown names and ill-typed values are refused with serde's message.
fn patch<T: Serialize + DeserializeOwned>(
    value: &T,
    set: &Mapping,
    protected: &[&str],
) -> Result<T, String> {
    let Value::Mapping(mut fields) = serde_yaml_ng::to_value(value).map_err(|e| e.to_string())?
    else {
        return Err("not an object".into());
    };
    for (key, v) in set {
        let Some(name) = key.as_str() else {
            return Err(format!("field names are strings, not {key:?}"));
        };
        if protected.contains(&name) {
            return Err(format!("{name} cannot be changed by an edit"));
        }
        fields.insert(key.clone(), v.clone());
    }
    serde_yaml_ng::from_value(Value::Mapping(fields)).map_err(|e| one_line(&e.to_string()))
}

fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or("invalid value").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
ports:
  - { name: client, device: d0, address: 10.0.1.1/24 }
  - { name: server, device: d1, address: 10.0.2.1/24 }
local_addresses:
  - { address: 10.0.2.100, port: server }
services:
  - address: 10.0.1.100
    port: 80
    protocol: tcp
    scheduler: rr
    real_servers:
      - { address: 10.0.2.11 }
      - { address: 10.0.2.12, port: 8080, weight: 2 }
"#;

    fn config() -> Config {
        Config::from_yaml(CONFIG).unwrap()
    }

    fn key(port: u16) -> ServiceKey {
        ServiceKey {
            protocol: Protocol::Tcp,
            address: "10.0.1.100".parse().unwrap(),
            port,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(pairs: &[(&str, Value)]) -> Mapping {
        pairs
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect()
    }

    #[test]
    fn refused_addresses_leave_the_configuration_untouched() {
        let mut c = config();
        let before = c.clone();
        let e = c
            .apply_edits(&[Edit::AddLocalAddress {
                address: ip("127.0.0.1"),
                port: Some("server".into()),
            }])
            .unwrap_err();
        assert_eq!(
            e.message,
            "local_addresses[1].address: 127.0.0.1 is a loopback address"
        );
        let e = c
            .apply_edits(&[Edit::AddService {
                service: ServiceConfig::with_defaults(Protocol::Tcp, ip("224.0.0.5"), 80),
            }])
            .unwrap_err();
        assert_eq!(
            e.message,
            "service TCP 224.0.0.5:80: address: 224.0.0.5 is a multicast address"
        );
        assert_eq!(c, before);
    }

    #[test]
    fn defaults_come_from_serde() {
        let s = ServiceConfig::with_defaults(Protocol::Udp, ip("10.0.1.100"), 53);
        assert_eq!(s.scheduler, "wlc");
        assert_eq!(s.persistence, None);
        assert_eq!(s.persistence_prefix, 32);
        assert_eq!(s.forward, ForwardMode::FullNat);
        assert!(s.real_servers.is_empty());
        let r = RealServerConfig::with_defaults(ip("10.0.2.11"));
        assert_eq!((r.weight, r.port, r.forward), (1, None, None));
    }

    #[test]
    fn add_edit_delete_services_and_real_servers() {
        let mut c = config();
        let mut svc = ServiceConfig::with_defaults(Protocol::Tcp, ip("10.0.1.100"), 443);
        svc.forward = ForwardMode::Nat;
        let mut rs = RealServerConfig::with_defaults(ip("10.0.2.13"));
        rs.weight = 4;
        c.apply_edits(&[
            Edit::AddService { service: svc },
            Edit::AddRealServer {
                service: key(443),
                server: rs,
            },
            Edit::EditService {
                service: key(443),
                set: set(&[("scheduler", "wrr".into()), ("persistence", 600.into())]),
            },
            Edit::EditRealServer {
                service: key(80),
                address: ip("10.0.2.12"),
                port: Some(8080),
                set: set(&[("weight", 7.into()), ("forward", "nat".into())]),
            },
            Edit::DeleteRealServer {
                service: key(80),
                address: ip("10.0.2.11"),
                port: None,
            },
        ])
        .unwrap();
        let https = &c.services[c.service_index(&key(443)).unwrap()];
        assert_eq!(https.scheduler, "wrr");
        assert_eq!(https.persistence, Some(600));
        assert_eq!(https.real_servers[0].weight, 4);
        let http = &c.services[0];
        assert_eq!(http.real_servers.len(), 1);
        assert_eq!(http.real_servers[0].weight, 7);
        assert_eq!(http.real_servers[0].forward, Some(ForwardMode::Nat));
        c.apply_edits(&[Edit::DeleteService { service: key(80) }])
            .unwrap();
        assert_eq!(c.services.len(), 1);
        c.apply_edits(&[Edit::Clear]).unwrap();
        assert!(c.services.is_empty());
    }

    #[test]
    fn a_failing_batch_changes_nothing() {
        let mut c = config();
        let before = c.clone();
        let err = c
            .apply_edits(&[
                Edit::DeleteService { service: key(80) },
                Edit::DeleteService { service: key(80) },
            ])
            .unwrap_err();
        assert_eq!(err.edit, Some(1));
        assert_eq!(err.message, "no service TCP 10.0.1.100:80");
        assert_eq!(c, before);
        // Every edit applies but the result is invalid: refused whole.
        let err = c
            .apply_edits(&[
                Edit::EditRealServer {
                    service: key(80),
                    address: ip("10.0.2.11"),
                    port: None,
                    set: set(&[("weight", 70000.into())]),
                },
                Edit::Clear,
                Edit::AddService {
                    service: ServiceConfig::with_defaults(Protocol::Tcp, ip("10.0.1.100"), 0),
                },
            ])
            .unwrap_err();
        assert_eq!(err.edit, None);
        assert_eq!(err.message, "service TCP 10.0.1.100:0: port: must not be 0");
        assert_eq!(c, before);
    }

    #[test]
    fn errors_speak_of_services_and_real_servers() {
        let mut c = config();
        let cases = [
            (
                Edit::AddService {
                    service: ServiceConfig::with_defaults(Protocol::Tcp, ip("10.0.1.100"), 80),
                },
                "service TCP 10.0.1.100:80 already exists",
            ),
            (
                Edit::AddRealServer {
                    service: key(80),
                    server: RealServerConfig::with_defaults(ip("10.0.2.11")),
                },
                "real server 10.0.2.11:80 already exists in service TCP 10.0.1.100:80",
            ),
            (
                Edit::DeleteRealServer {
                    service: key(80),
                    address: ip("10.0.2.12"),
                    port: None,
                },
                "no real server 10.0.2.12:80 in service TCP 10.0.1.100:80",
            ),
            (
                Edit::EditService {
                    service: key(80),
                    set: set(&[("schedular", "rr".into())]),
                },
                "service TCP 10.0.1.100:80: unknown field `schedular`",
            ),
            (
                Edit::EditService {
                    service: key(80),
                    set: set(&[("port", 81.into())]),
                },
                "service TCP 10.0.1.100:80: port cannot be changed by an edit",
            ),
            (
                Edit::SetTimeout {
                    state: "tim_wait".into(),
                    seconds: 3,
                },
                "timeouts: unknown field `tim_wait`",
            ),
            (
                Edit::AddLocalAddress {
                    address: ip("192.168.9.9"),
                    port: None,
                },
                "local address 192.168.9.9 is in no port's subnet",
            ),
            (
                Edit::DeleteLocalAddress {
                    address: ip("10.0.2.101"),
                },
                "no local address 10.0.2.101",
            ),
        ];
        for (edit, expected) in cases {
            let err = c.apply_edits(&[edit]).unwrap_err();
            assert!(
                err.message.starts_with(expected),
                "{:?} should start with {expected:?}",
                err.message
            );
        }
        let err = c
            .apply_edits(&[Edit::EditRealServer {
                service: key(80),
                address: ip("10.0.2.12"),
                port: Some(8080),
                set: set(&[("weight", 70000.into())]),
            }])
            .unwrap_err();
        assert_eq!(
            err.message,
            "service TCP 10.0.1.100:80, real server 10.0.2.12:8080: weight: 70000 is above 65535"
        );
        // The last local address cannot go while FullNAT servers need it.
        let err = c
            .apply_edits(&[Edit::DeleteLocalAddress {
                address: ip("10.0.2.100"),
            }])
            .unwrap_err();
        assert!(
            err.message.starts_with(
                "service TCP 10.0.1.100:80, real server 10.0.2.11:80: forward: fullnat needs"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn timeouts_and_local_addresses() {
        let mut c = config();
        c.apply_edits(&[
            Edit::SetTimeouts {
                tcp: 60,
                tcpfin: 0,
                udp: 30,
            },
            Edit::SetTimeout {
                state: "time_wait".into(),
                seconds: 5,
            },
            Edit::SetTimeout {
                state: "tcpfin".into(),
                seconds: 7,
            },
            Edit::AddLocalAddress {
                address: ip("10.0.2.101"),
                port: None,
            },
        ])
        .unwrap();
        assert_eq!(c.timeouts.established, 60);
        assert_eq!(c.timeouts.fin_wait, 7);
        assert_eq!(c.timeouts.udp, 30);
        assert_eq!(c.timeouts.time_wait, 5);
        assert_eq!(c.local_addresses[1].port, "server");
        let err = c
            .apply_edits(&[Edit::SetTimeout {
                state: "udp".into(),
                seconds: 0,
            }])
            .unwrap_err();
        assert_eq!(
            err.message,
            "timeouts.udp: 0 is not within 1..=86400 seconds"
        );
        c.apply_edits(&[Edit::DeleteLocalAddress {
            address: ip("10.0.2.101"),
        }])
        .unwrap();
        assert_eq!(c.local_addresses.len(), 1);
    }
}

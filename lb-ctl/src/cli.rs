//! lb-ctl's two command lines, both turned into one [`Action`]:
//!
//! * the ipvsadm form (`lb-ctl -A -t 10.0.0.100:80 -s wlc -p 300`), with ipvsadm's
//!   options, defaults and option checks, plus DPVS's local-address commands and a
//!   FullNAT forwarding flag (`-F`/`--fullnat`);
//! * a scriptable form with subcommands (`lb-ctl service add tcp 10.0.0.100:80
//!   --scheduler wlc`), whose edits change only what they name.
//!
//! Settings ipvsadm has no option for are set with `--opt KEY=VALUE`, KEY being the
//! field's name in the YAML file and VALUE a YAML value (`--opt carrier=toa`).

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use lb_config::api::{Edit, Mapping, ServiceKey};
use lb_config::{RealServerConfig, ServiceConfig, DEFAULT_SOCKET};
use lb_core::service::Protocol;
use serde_yaml_ng::Value;

use crate::format::ListFormat;

/// What lb-ctl was asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// List services (`-L`).
    List(ListSpec),
    /// List connections (`-L -c`).
    Connections {
        /// Only this service's.
        service: Option<ServiceKey>,
    },
    /// Print the timeouts (`-L --timeout`).
    Timeouts,
    /// Print the rules in ipvsadm's `-S` format.
    Save,
    /// Read rules (`-S` format) and apply them as one change.
    Restore {
        /// The file; stdin when absent.
        input: Option<PathBuf>,
        /// Clear every service first (in the same change).
        replace: bool,
    },
    /// Apply edits as one change.
    Apply(Vec<Edit>),
    /// Zero the counters (`-Z`).
    Zero(Option<ServiceKey>),
    /// List the local addresses (`--get-laddr`).
    LocalAddresses,
    /// Director status.
    Status,
    /// Re-read the configuration file.
    Reload,
    /// Print the running configuration as YAML.
    ShowConfig,
}

/// A services listing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListSpec {
    /// Which columns.
    pub format: ListFormat,
    /// Exact numbers.
    pub exact: bool,
    /// Only this service (and no version header, as ipvsadm).
    pub service: Option<ServiceKey>,
    /// Keep the director's order instead of sorting (`--nosort`).
    pub nosort: bool,
}

/// What every form accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// The director's control socket.
    pub socket: PathBuf,
    /// Print the director's answer as JSON.
    pub json: bool,
    /// What to do.
    pub action: Action,
}

/// Parses a whole command line (`args[0]` is the program name). Help and version
/// requests come back as `Err(Exit)`.
pub fn parse(args: &[String]) -> Result<Invocation, ParseError> {
    if is_scripted(args) {
        let cli = Scripted::try_parse_from(args).map_err(ParseError::from_clap)?;
        Ok(Invocation {
            socket: cli.socket,
            json: cli.json,
            action: cli.command.into_action().map_err(ParseError::Message)?,
        })
    } else {
        let cli = Ipvsadm::try_parse_from(args).map_err(ParseError::from_clap)?;
        Ok(Invocation {
            socket: cli.socket.clone(),
            json: cli.json,
            action: cli.into_action().map_err(ParseError::Message)?,
        })
    }
}

/// Why a command line was not run.
#[derive(Debug)]
pub enum ParseError {
    /// Help or version was asked for: print it and exit 0.
    Exit(clap::Error),
    /// A one-line error.
    Message(String),
}

impl ParseError {
    fn from_clap(e: clap::Error) -> ParseError {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ParseError::Exit(e),
            _ => ParseError::Message(clap_message(&e)),
        }
    }
}

/// clap's error on one line, without "error: " and the usage that follows.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

const SUBCOMMANDS: &[&str] = &[
    "list",
    "status",
    "reload",
    "config",
    "service",
    "server",
    "laddr",
    "timeout",
    "connections",
    "zero",
    "save",
    "restore",
    "clear",
    "help",
];

/// Whether the command line uses the subcommand form: the first argument after
/// the global options is a subcommand name.
fn is_scripted(args: &[String]) -> bool {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--json" || a.starts_with("--socket=") {
            i += 1;
        } else if a == "--socket" {
            i += 2;
        } else {
            return SUBCOMMANDS.contains(&a);
        }
    }
    false
}

// ------------------------------------------------------------------ ipvsadm form

/// lb-ctl, ipvsadm-compatible.
#[derive(Debug, Parser)]
#[command(
    name = "lb-ctl",
    version,
    about = "Control the lb-director load balancer: ipvsadm's command line, plus \
             subcommands for scripts (lb-ctl status, lb-ctl service add …; see \
             `lb-ctl help`)",
    after_help = "Subcommands: list status reload config service server laddr timeout \
                  connections zero save restore clear (lb-ctl help SUBCOMMAND).\n\n\
                  Exit status: 0 success, 1 refused by the director (validation error, \
                  unknown service…), 2 usage error (bad arguments, found before anything \
                  is sent), 3 the director cannot be reached (no socket, connection \
                  refused, timeout)."
)]
struct Ipvsadm {
    /// The director's control socket.
    #[arg(long, env = "LB_CTL_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print the director's answer as JSON.
    #[arg(long)]
    json: bool,

    // Commands.
    /// Add a virtual service.
    #[arg(short = 'A', long = "add-service", help_heading = "Commands")]
    add_service: bool,
    /// Edit a virtual service.
    #[arg(short = 'E', long = "edit-service", help_heading = "Commands")]
    edit_service: bool,
    /// Delete a virtual service.
    #[arg(short = 'D', long = "delete-service", help_heading = "Commands")]
    delete_service: bool,
    /// Clear the whole table.
    #[arg(short = 'C', long = "clear", help_heading = "Commands")]
    clear: bool,
    /// Restore rules from stdin, as one atomic change.
    #[arg(short = 'R', long = "restore", help_heading = "Commands")]
    restore: bool,
    /// Save rules to stdout.
    #[arg(short = 'S', long = "save", help_heading = "Commands")]
    save: bool,
    /// Add a real server.
    #[arg(short = 'a', long = "add-server", help_heading = "Commands")]
    add_server: bool,
    /// Edit a real server.
    #[arg(short = 'e', long = "edit-server", help_heading = "Commands")]
    edit_server: bool,
    /// Delete a real server.
    #[arg(short = 'd', long = "delete-server", help_heading = "Commands")]
    delete_server: bool,
    /// List the table.
    #[arg(short = 'L', long = "list", help_heading = "Commands")]
    list: bool,
    /// List the table.
    #[arg(short = 'l', help_heading = "Commands")]
    list_lower: bool,
    /// Zero counters in a service or all services.
    #[arg(short = 'Z', long = "zero", help_heading = "Commands")]
    zero: bool,
    /// Set the tcp, tcpfin and udp timeouts (0 = unchanged).
    #[arg(long = "set", num_args = 3, value_names = ["TCP", "TCPFIN", "UDP"], help_heading = "Commands")]
    set: Option<Vec<String>>,
    /// Add a FullNAT local address (-z LIP [--ifname PORT]).
    #[arg(short = 'P', long = "add-laddr", help_heading = "Commands")]
    add_laddr: bool,
    /// Delete a FullNAT local address (-z LIP).
    #[arg(short = 'Q', long = "del-laddr", help_heading = "Commands")]
    del_laddr: bool,
    /// List the FullNAT local addresses.
    #[arg(short = 'G', long = "get-laddr", help_heading = "Commands")]
    get_laddr: bool,

    // Options.
    /// TCP service VIP:port.
    #[arg(short = 't', long = "tcp-service", value_name = "VIP:PORT")]
    tcp_service: Option<String>,
    /// UDP service VIP:port.
    #[arg(short = 'u', long = "udp-service", value_name = "VIP:PORT")]
    udp_service: Option<String>,
    /// Firewall-mark service (not supported).
    #[arg(short = 'f', long = "fwmark-service", value_name = "FWMARK")]
    fwmark_service: Option<String>,
    /// Scheduler (default wlc).
    #[arg(short = 's', long = "scheduler")]
    scheduler: Option<String>,
    /// Persistent service, timeout in seconds (default 300).
    #[arg(short = 'p', long = "persistent", num_args = 0..=1, default_missing_value = "300", value_name = "TIMEOUT")]
    persistent: Option<String>,
    /// Persistence granularity mask.
    #[arg(short = 'M', long = "netmask")]
    netmask: Option<String>,
    /// Scheduler flags, comma separated (sh-fallback, sh-port, mh-fallback, mh-port).
    #[arg(short = 'b', long = "sched-flags")]
    sched_flags: Option<String>,
    /// Real server RIP[:port].
    #[arg(short = 'r', long = "real-server", value_name = "RIP[:PORT]")]
    real_server: Option<String>,
    /// Direct routing (ipvsadm's default).
    #[arg(short = 'g', long = "gatewaying")]
    gatewaying: bool,
    /// IP-in-IP tunnelling.
    #[arg(short = 'i', long = "ipip")]
    ipip: bool,
    /// Masquerading (NAT).
    #[arg(short = 'm', long = "masquerading")]
    masquerading: bool,
    /// FullNAT (source and destination NAT through a local address).
    #[arg(short = 'F', long = "fullnat")]
    fullnat: bool,
    /// Weight of the real server, 0..65535 (default 1).
    #[arg(short = 'w', long = "weight", allow_hyphen_values = true)]
    weight: Option<String>,
    /// Upper connection threshold.
    #[arg(short = 'x', long = "u-threshold", allow_hyphen_values = true)]
    u_threshold: Option<String>,
    /// Lower connection threshold.
    #[arg(short = 'y', long = "l-threshold", allow_hyphen_values = true)]
    l_threshold: Option<String>,
    /// Tunnel type: ipip or gue.
    #[arg(long = "tun-type")]
    tun_type: Option<String>,
    /// GUE destination port.
    #[arg(long = "tun-port")]
    tun_port: Option<String>,
    /// Local address for --add-laddr / --del-laddr.
    #[arg(short = 'z', long = "laddr", value_name = "LIP")]
    laddr: Option<String>,
    /// The director port a local address lives on (default: the port whose subnet
    /// holds it).
    #[arg(long = "ifname", value_name = "PORT")]
    ifname: Option<String>,
    /// Any other setting of the service or real server, by its YAML name.
    #[arg(long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    /// Numeric output (always numeric; accepted for compatibility).
    #[arg(short = 'n', long = "numeric")]
    numeric: bool,
    /// List connections.
    #[arg(short = 'c', long = "connection")]
    connection: bool,
    /// List the timeouts (tcp tcpfin udp).
    #[arg(long = "timeout")]
    timeout: bool,
    /// Traffic counters.
    #[arg(long = "stats")]
    stats: bool,
    /// Rates.
    #[arg(long = "rate")]
    rate: bool,
    /// Connection thresholds.
    #[arg(long = "thresholds")]
    thresholds: bool,
    /// Persistent-connection counts (not supported).
    #[arg(long = "persistent-conn")]
    persistent_conn: bool,
    /// Keep the director's order.
    #[arg(long = "nosort")]
    nosort: bool,
    /// Sort (the default; accepted for compatibility).
    #[arg(long = "sort")]
    sort: bool,
    /// Exact numbers, without K/M/G.
    #[arg(short = 'X', long = "exact")]
    exact: bool,
    /// One-packet scheduling (not supported).
    #[arg(short = 'o', long = "ops")]
    ops: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    AddService,
    EditService,
    DeleteService,
    Clear,
    Restore,
    Save,
    AddServer,
    EditServer,
    DeleteServer,
    List,
    Zero,
    Set,
    AddLaddr,
    DelLaddr,
    GetLaddr,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::AddService => "add-service",
            Cmd::EditService => "edit-service",
            Cmd::DeleteService => "delete-service",
            Cmd::Clear => "clear",
            Cmd::Restore => "restore",
            Cmd::Save => "save",
            Cmd::AddServer => "add-server",
            Cmd::EditServer => "edit-server",
            Cmd::DeleteServer => "delete-server",
            Cmd::List => "list",
            Cmd::Zero => "zero",
            Cmd::Set => "set",
            Cmd::AddLaddr => "add-laddr",
            Cmd::DelLaddr => "del-laddr",
            Cmd::GetLaddr => "get-laddr",
        }
    }

    /// (allowed, required) option names, as ipvsadm's table of legal
    /// combinations (plus the options ipvsadm lacks).
    fn options(self) -> (&'static [&'static str], &'static [&'static str]) {
        const SVC: &str = "service-address";
        match self {
            Cmd::AddService | Cmd::EditService => (
                &[
                    SVC,
                    "scheduler",
                    "persistent",
                    "netmask",
                    "sched-flags",
                    "opt",
                ],
                &[SVC],
            ),
            Cmd::DeleteService => (&[SVC], &[SVC]),
            Cmd::Clear | Cmd::Restore | Cmd::Set => (&[], &[]),
            Cmd::Save => (&["numeric"], &[]),
            Cmd::AddServer | Cmd::EditServer => (
                &[
                    SVC,
                    "real-server",
                    "forwarding-method",
                    "weight",
                    "u-threshold",
                    "l-threshold",
                    "tun-type",
                    "tun-port",
                    "opt",
                ],
                &[SVC, "real-server"],
            ),
            Cmd::DeleteServer => (&[SVC, "real-server"], &[SVC, "real-server"]),
            Cmd::List => (
                &[
                    "numeric",
                    "connection",
                    SVC,
                    "timeout",
                    "stats",
                    "rate",
                    "thresholds",
                    "nosort",
                    "exact",
                ],
                &[],
            ),
            Cmd::Zero => (&[SVC], &[]),
            Cmd::AddLaddr | Cmd::DelLaddr => (&["laddr", SVC, "ifname"], &["laddr"]),
            Cmd::GetLaddr => (&[SVC], &[]),
        }
    }
}

impl Ipvsadm {
    fn command(&self) -> Result<Option<Cmd>, String> {
        let given = [
            (self.add_service, Cmd::AddService),
            (self.edit_service, Cmd::EditService),
            (self.delete_service, Cmd::DeleteService),
            (self.clear, Cmd::Clear),
            (self.restore, Cmd::Restore),
            (self.save, Cmd::Save),
            (self.add_server, Cmd::AddServer),
            (self.edit_server, Cmd::EditServer),
            (self.delete_server, Cmd::DeleteServer),
            (self.list || self.list_lower, Cmd::List),
            (self.zero, Cmd::Zero),
            (self.set.is_some(), Cmd::Set),
            (self.add_laddr, Cmd::AddLaddr),
            (self.del_laddr, Cmd::DelLaddr),
            (self.get_laddr, Cmd::GetLaddr),
        ];
        let mut cmds = given.iter().filter(|(on, _)| *on).map(|(_, c)| *c);
        let first = cmds.next();
        if cmds.next().is_some() {
            return Err("multiple commands specified".into());
        }
        Ok(first)
    }

    /// The options given, by ipvsadm's names.
    fn options_given(&self) -> Result<Vec<&'static str>, String> {
        let forwards = [self.gatewaying, self.ipip, self.masquerading, self.fullnat]
            .iter()
            .filter(|f| **f)
            .count();
        if forwards > 1 {
            return Err("multiple 'forwarding-method' options specified".into());
        }
        let services = [
            self.tcp_service.is_some(),
            self.udp_service.is_some(),
            self.fwmark_service.is_some(),
        ]
        .iter()
        .filter(|f| **f)
        .count();
        if services > 1 {
            return Err("multiple 'service-address' options specified".into());
        }
        let all = [
            ("numeric", self.numeric),
            ("connection", self.connection),
            ("service-address", services > 0),
            ("scheduler", self.scheduler.is_some()),
            ("persistent", self.persistent.is_some()),
            ("netmask", self.netmask.is_some()),
            ("sched-flags", self.sched_flags.is_some()),
            ("real-server", self.real_server.is_some()),
            ("forwarding-method", forwards > 0),
            ("weight", self.weight.is_some()),
            ("u-threshold", self.u_threshold.is_some()),
            ("l-threshold", self.l_threshold.is_some()),
            ("tun-type", self.tun_type.is_some()),
            ("tun-port", self.tun_port.is_some()),
            ("laddr", self.laddr.is_some()),
            ("ifname", self.ifname.is_some()),
            ("opt", !self.opt.is_empty()),
            ("timeout", self.timeout),
            ("stats", self.stats),
            ("rate", self.rate),
            ("thresholds", self.thresholds),
            ("persistent-conn", self.persistent_conn),
            ("nosort", self.nosort),
            ("exact", self.exact),
            ("ops", self.ops),
        ];
        Ok(all.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect())
    }

    fn service_key(&self) -> Result<Option<ServiceKey>, String> {
        if self.fwmark_service.is_some() {
            return Err("firewall-mark services (-f) are not supported".into());
        }
        let (protocol, text) = match (&self.tcp_service, &self.udp_service) {
            (Some(t), _) => (Protocol::Tcp, t),
            (_, Some(u)) => (Protocol::Udp, u),
            _ => return Ok(None),
        };
        parse_service(protocol, text).map(Some)
    }

    fn into_action(self) -> Result<Action, String> {
        if self.ops {
            return Err("one-packet scheduling (-o) is not supported".into());
        }
        if self.persistent_conn {
            return Err("--persistent-conn is not supported".into());
        }
        let Some(cmd) = self.command()? else {
            // ipvsadm with no command lists the table; with options only, it fails.
            if self.options_given()?.is_empty() {
                return Ok(Action::List(ListSpec::default()));
            }
            return Err("no command specified (try -L -n, or --help)".into());
        };
        let given = self.options_given()?;
        let (allowed, required) = cmd.options();
        for opt in &given {
            if !allowed.contains(opt) {
                return Err(format!(
                    "Illegal '{opt}' option with the '{}' command",
                    cmd.name()
                ));
            }
        }
        for opt in required {
            if !given.contains(opt) {
                return Err(format!(
                    "You need to supply the '{opt}' option for the '{}' command",
                    cmd.name()
                ));
            }
        }
        let key = self.service_key()?;
        let need_key = || key.ok_or_else(|| "no service given".to_owned());
        Ok(match cmd {
            Cmd::List => {
                let formats = [self.stats, self.rate, self.thresholds]
                    .iter()
                    .filter(|f| **f)
                    .count();
                if (self.connection || self.timeout) && formats > 0
                    || (self.connection && self.timeout)
                    || formats > 1
                {
                    return Err("options conflicts in the list command".into());
                }
                if self.connection {
                    Action::Connections { service: key }
                } else if self.timeout {
                    Action::Timeouts
                } else {
                    Action::List(ListSpec {
                        format: if self.stats {
                            ListFormat::Stats
                        } else if self.rate {
                            ListFormat::Rate
                        } else if self.thresholds {
                            ListFormat::Thresholds
                        } else {
                            ListFormat::Plain
                        },
                        exact: self.exact,
                        service: key,
                        nosort: self.nosort,
                    })
                }
            }
            Cmd::Save => Action::Save,
            Cmd::Restore => Action::Restore {
                input: None,
                replace: false,
            },
            Cmd::Zero => Action::Zero(key),
            Cmd::GetLaddr => Action::LocalAddresses,
            Cmd::Clear => Action::Apply(vec![Edit::Clear]),
            Cmd::Set => {
                let v = self.set.as_deref().unwrap_or_default();
                let t = |i: usize| parse_number(&v[i], 0, 2_678_400, "timeout");
                Action::Apply(vec![Edit::SetTimeouts {
                    tcp: t(0)?,
                    tcpfin: t(1)?,
                    udp: t(2)?,
                }])
            }
            Cmd::AddService => Action::Apply(vec![Edit::AddService {
                service: self.new_service(need_key()?)?,
            }]),
            Cmd::EditService => Action::Apply(vec![Edit::EditService {
                service: need_key()?,
                set: self.service_settings()?,
            }]),
            Cmd::DeleteService => Action::Apply(vec![Edit::DeleteService {
                service: need_key()?,
            }]),
            Cmd::AddServer => {
                let service = need_key()?;
                Action::Apply(vec![Edit::AddRealServer {
                    service,
                    server: self.new_real_server(&service)?,
                }])
            }
            Cmd::EditServer => {
                let service = need_key()?;
                let (address, port) = self.real_server_endpoint(&service)?;
                // ipvsadm replaces every setting of the server: what is not given
                // goes back to its default.
                let mut set = to_mapping(&RealServerConfig::with_defaults(address));
                set.remove("address");
                set.remove("port");
                for (k, v) in self.real_server_settings()? {
                    set.insert(k, v);
                }
                Action::Apply(vec![Edit::EditRealServer {
                    service,
                    address,
                    port,
                    set,
                }])
            }
            Cmd::DeleteServer => {
                let service = need_key()?;
                let (address, port) = self.real_server_endpoint(&service)?;
                Action::Apply(vec![Edit::DeleteRealServer {
                    service,
                    address,
                    port,
                }])
            }
            Cmd::AddLaddr | Cmd::DelLaddr => {
                let text = self.laddr.as_deref().unwrap_or_default();
                let address: IpAddr = text
                    .parse()
                    .map_err(|_| format!("illegal local address '{text}' specified"))?;
                Action::Apply(vec![if cmd == Cmd::AddLaddr {
                    Edit::AddLocalAddress {
                        address,
                        port: self.ifname.clone(),
                    }
                } else {
                    Edit::DeleteLocalAddress { address }
                }])
            }
        })
    }

    /// `-s`, `-b`, `-p`, `-M` as ipvsadm sets them (with their defaults), and any
    /// `--opt`.
    fn service_settings(&self) -> Result<Mapping, String> {
        let mut m = Mapping::new();
        let scheduler = self.scheduler.clone().unwrap_or_else(|| "wlc".to_owned());
        let flags = match &self.sched_flags {
            Some(f) => sched_flags(&scheduler, f),
            None => Vec::new(),
        };
        m.insert("scheduler".into(), scheduler.into());
        m.insert(
            "scheduler_flags".into(),
            Value::Sequence(flags.into_iter().map(Value::from).collect()),
        );
        let persistence = match &self.persistent {
            Some(p) => Value::from(parse_number(p, 1, 2_678_400, "timeout")?),
            None => Value::Null,
        };
        m.insert("persistence".into(), persistence);
        let prefix = match &self.netmask {
            Some(mask) => parse_netmask(mask)?,
            None => 32,
        };
        m.insert("persistence_prefix".into(), prefix.into());
        add_opts(&mut m, &self.opt)?;
        Ok(m)
    }

    fn new_service(&self, key: ServiceKey) -> Result<ServiceConfig, String> {
        let mut m = to_mapping(&ServiceConfig::with_defaults(
            key.protocol,
            key.address,
            key.port,
        ));
        // Real servers added without a forwarding flag route directly, as ipvsadm's.
        m.insert("forward".into(), "dr".into());
        for (k, v) in self.service_settings()? {
            m.insert(k, v);
        }
        from_mapping(m).map_err(|e| format!("service {key}: {e}"))
    }

    fn real_server_endpoint(&self, service: &ServiceKey) -> Result<(IpAddr, Option<u16>), String> {
        let text = self.real_server.as_deref().unwrap_or_default();
        let (address, port) = parse_endpoint(text)
            .map_err(|_| "illegal real server address[:port] specified".to_owned())?;
        // ipvsadm: the port of a direct-routing or tunnelled server is the
        // virtual port.
        let port = if self.gatewaying || self.ipip {
            Some(service.port)
        } else {
            port
        };
        Ok((address, port))
    }

    /// `-g/-i/-m/-F`, `-w`, `-x`, `-y`, `--tun-type`, `--tun-port` and `--opt`, with
    /// ipvsadm's defaults for the first four.
    fn real_server_settings(&self) -> Result<Mapping, String> {
        let mut m = Mapping::new();
        let forward = if self.gatewaying {
            Value::from("dr")
        } else if self.ipip {
            Value::from("tunnel")
        } else if self.masquerading {
            Value::from("nat")
        } else if self.fullnat {
            Value::from("fullnat")
        } else {
            // The service's default: direct routing for services made with -A.
            Value::Null
        };
        m.insert("forward".into(), forward);
        let weight = match &self.weight {
            Some(w) => parse_number(w, 0, 65535, "weight")?,
            None => 1,
        };
        m.insert("weight".into(), weight.into());
        let threshold = |v: &Option<String>, what| match v {
            Some(t) => parse_number(t, 0, i32::MAX as u32, what),
            None => Ok(0),
        };
        m.insert(
            "upper_threshold".into(),
            threshold(&self.u_threshold, "u_threshold")?.into(),
        );
        m.insert(
            "lower_threshold".into(),
            threshold(&self.l_threshold, "l_threshold")?.into(),
        );
        if let Some(t) = &self.tun_type {
            m.insert("tun_type".into(), t.as_str().into());
        }
        if let Some(p) = &self.tun_port {
            m.insert(
                "tun_port".into(),
                parse_number(p, 1, 65535, "tun_port")?.into(),
            );
        }
        add_opts(&mut m, &self.opt)?;
        Ok(m)
    }

    fn new_real_server(&self, service: &ServiceKey) -> Result<RealServerConfig, String> {
        let (address, port) = self.real_server_endpoint(service)?;
        let mut m = to_mapping(&RealServerConfig::with_defaults(address));
        if let Some(p) = port {
            m.insert("port".into(), p.into());
        }
        for (k, v) in self.real_server_settings()? {
            m.insert(k, v);
        }
        from_mapping(m).map_err(|e| {
            format!(
                "real server {}: {e}",
                crate::format::endpoint(address, port.unwrap_or(service.port))
            )
        })
    }
}

// ------------------------------------------------------------------ helpers

/// A `VIP:port` service of `protocol`.
pub fn parse_service(protocol: Protocol, text: &str) -> Result<ServiceKey, String> {
    let (address, port) = parse_endpoint(text)
        .map_err(|_| "illegal virtual server address[:port] specified".to_owned())?;
    let port = port.ok_or_else(|| {
        format!("virtual server {text}: the port is required (port-0 services are not supported)")
    })?;
    Ok(ServiceKey {
        protocol,
        address,
        port,
    })
}

/// `a.b.c.d`, `a.b.c.d:port`, `v6` or `[v6]:port`.
pub fn parse_endpoint(text: &str) -> Result<(IpAddr, Option<u16>), ()> {
    if let Some(rest) = text.strip_prefix('[') {
        let (addr, after) = rest.split_once(']').ok_or(())?;
        let addr = addr.parse().map_err(|_| ())?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((addr, Some(p.parse().map_err(|_| ())?))),
            None if after.is_empty() => Ok((addr, None)),
            None => Err(()),
        };
    }
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok((addr, None));
    }
    let (addr, port) = text.rsplit_once(':').ok_or(())?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| ())?;
    Ok((IpAddr::V4(addr), Some(port.parse().map_err(|_| ())?)))
}

fn parse_number(text: &str, min: u32, max: u32, what: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("{what}: {text} is not a valid {what} ({min}..{max})"))
}

/// A dotted netmask (`255.255.255.0`) or a prefix length, as a prefix length.
pub fn parse_netmask(text: &str) -> Result<u8, String> {
    let bad = || "illegal virtual server persistent mask specified".to_owned();
    if let Ok(prefix) = text.parse::<u8>() {
        return if prefix <= 32 { Ok(prefix) } else { Err(bad()) };
    }
    let mask = u32::from(text.parse::<Ipv4Addr>().map_err(|_| bad())?);
    let prefix = mask.leading_ones();
    if mask.checked_shl(prefix).unwrap_or(0) != 0 {
        return Err(bad());
    }
    Ok(prefix as u8)
}

/// ipvsadm's generic `flag-1`/`flag-2` as the scheduler's own names.
fn sched_flags(scheduler: &str, text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(|f| match (scheduler, f) {
            ("sh" | "mh", "flag-1") => format!("{scheduler}-fallback"),
            ("sh" | "mh", "flag-2") => format!("{scheduler}-port"),
            _ => f.to_owned(),
        })
        .collect()
}

/// `--opt KEY=VALUE` pairs into `m` (VALUE is YAML: `toa`, `4093`, `null`, `[a, b]`).
fn add_opts(m: &mut Mapping, opts: &[String]) -> Result<(), String> {
    for opt in opts {
        let (key, value) = opt
            .split_once('=')
            .ok_or_else(|| format!("--opt {opt}: expected KEY=VALUE"))?;
        let value: Value = serde_yaml_ng::from_str(value).map_err(|e| {
            format!(
                "--opt {opt}: {}",
                e.to_string().lines().next().unwrap_or("")
            )
        })?;
        m.insert(key.trim().into(), value);
    }
    Ok(())
}

/// A configuration object as a YAML mapping.
pub fn to_mapping<T: serde::Serialize>(value: &T) -> Mapping {
    match serde_yaml_ng::to_value(value) {
        Ok(Value::Mapping(m)) => m,
        _ => Mapping::new(),
    }
}

fn from_mapping<T: serde::de::DeserializeOwned>(m: Mapping) -> Result<T, String> {
    serde_yaml_ng::from_value(Value::Mapping(m))
        .map_err(|e| e.to_string().lines().next().unwrap_or("invalid").to_owned())
}

// ------------------------------------------------------------------ scripted form

/// lb-ctl, subcommand form.
#[derive(Debug, Parser)]
#[command(
    name = "lb-ctl",
    version,
    about = "Control the lb-director load balancer (subcommand form; run lb-ctl -h for \
             the ipvsadm-compatible form)",
    after_help = "Exit status: 0 success, 1 refused by the director, 2 usage error, \
                  3 the director cannot be reached."
)]
struct Scripted {
    /// The director's control socket.
    #[arg(long, env = "LB_CTL_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    socket: PathBuf,
    /// Print the director's answer as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// List services and real servers (ipvsadm -L layouts).
    List(ListArgs),
    /// Director status: per-worker counters, drops by reason, ports.
    Status,
    /// Re-read the configuration file and apply it atomically; it replaces the
    /// running configuration, runtime edits included. An invalid file is rejected
    /// whole.
    Reload,
    /// Print the running configuration (file plus runtime edits) as YAML.
    Config,
    /// Add, edit or delete services.
    #[command(subcommand)]
    Service(ServiceSub),
    /// Add, edit or delete real servers.
    #[command(subcommand)]
    Server(ServerSub),
    /// FullNAT local addresses.
    #[command(subcommand)]
    Laddr(LaddrSub),
    /// Connection timeouts.
    #[command(subcommand)]
    Timeout(TimeoutSub),
    /// List connections (ipvsadm -L -c).
    Connections(OptionalService),
    /// Zero the listed counters (ipvsadm -Z).
    Zero(OptionalService),
    /// Print the rules in ipvsadm -S -n format.
    Save,
    /// Apply rules in ipvsadm -S format (from FILE or stdin) as one atomic change.
    Restore {
        /// Remove every service first (in the same change).
        #[arg(long)]
        replace: bool,
        /// The rules; stdin when absent.
        file: Option<PathBuf>,
    },
    /// Remove every service (ipvsadm -C).
    Clear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Proto {
    Tcp,
    Udp,
}

impl From<Proto> for Protocol {
    fn from(p: Proto) -> Protocol {
        match p {
            Proto::Tcp => Protocol::Tcp,
            Proto::Udp => Protocol::Udp,
        }
    }
}

#[derive(Debug, Args)]
struct ServiceArg {
    /// tcp or udp.
    protocol: Proto,
    /// VIP:PORT.
    service: String,
}

impl ServiceArg {
    fn key(&self) -> Result<ServiceKey, String> {
        parse_service(self.protocol.into(), &self.service)
    }
}

#[derive(Debug, Args)]
struct OptionalService {
    /// tcp or udp.
    protocol: Option<Proto>,
    /// VIP:PORT.
    service: Option<String>,
}

impl OptionalService {
    fn key(&self) -> Result<Option<ServiceKey>, String> {
        match (self.protocol, &self.service) {
            (Some(p), Some(s)) => parse_service(p.into(), s).map(Some),
            (None, None) => Ok(None),
            _ => Err("name a service as PROTOCOL VIP:PORT".into()),
        }
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Traffic counters.
    #[arg(long, conflicts_with_all = ["rate", "thresholds"])]
    stats: bool,
    /// Rates.
    #[arg(long, conflicts_with = "thresholds")]
    rate: bool,
    /// Connection thresholds.
    #[arg(long)]
    thresholds: bool,
    /// Exact numbers.
    #[arg(long)]
    exact: bool,
    #[command(flatten)]
    service: OptionalService,
}

#[derive(Debug, Args)]
struct ServiceSettings {
    /// Scheduler.
    #[arg(long, short = 's')]
    scheduler: Option<String>,
    /// Scheduler flags, comma separated.
    #[arg(long)]
    flags: Option<String>,
    /// Persistence timeout in seconds (0 = not persistent).
    #[arg(long)]
    persistent: Option<u32>,
    /// Persistence netmask (dotted or prefix length).
    #[arg(long)]
    netmask: Option<String>,
    /// Default forwarding mode of its real servers: dr, tunnel, nat, fullnat.
    #[arg(long)]
    forward: Option<String>,
    /// Any other setting, by its YAML name.
    #[arg(long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
}

impl ServiceSettings {
    fn mapping(&self) -> Result<Mapping, String> {
        let mut m = Mapping::new();
        if let Some(s) = &self.scheduler {
            m.insert("scheduler".into(), s.as_str().into());
        }
        if let Some(f) = &self.flags {
            let sched = self.scheduler.as_deref().unwrap_or("");
            m.insert(
                "scheduler_flags".into(),
                Value::Sequence(sched_flags(sched, f).into_iter().map(Value::from).collect()),
            );
        }
        if let Some(p) = self.persistent {
            m.insert(
                "persistence".into(),
                if p == 0 { Value::Null } else { p.into() },
            );
        }
        if let Some(mask) = &self.netmask {
            m.insert("persistence_prefix".into(), parse_netmask(mask)?.into());
        }
        if let Some(f) = &self.forward {
            m.insert("forward".into(), f.as_str().into());
        }
        add_opts(&mut m, &self.opt)?;
        Ok(m)
    }
}

#[derive(Debug, Subcommand)]
enum ServiceSub {
    /// Add a service (defaults as in the YAML file: wlc, fullnat).
    Add {
        #[command(flatten)]
        service: ServiceArg,
        #[command(flatten)]
        settings: ServiceSettings,
    },
    /// Change the settings given; the others stay.
    Edit {
        #[command(flatten)]
        service: ServiceArg,
        #[command(flatten)]
        settings: ServiceSettings,
    },
    /// Delete a service.
    Del {
        #[command(flatten)]
        service: ServiceArg,
    },
}

#[derive(Debug, Args)]
struct ServerArg {
    #[command(flatten)]
    service: ServiceArg,
    /// RIP[:PORT] (port default: the virtual port).
    server: String,
}

impl ServerArg {
    fn endpoint(&self) -> Result<(ServiceKey, IpAddr, Option<u16>), String> {
        let key = self.service.key()?;
        let (address, port) = parse_endpoint(&self.server)
            .map_err(|_| format!("illegal real server address[:port] '{}'", self.server))?;
        Ok((key, address, port))
    }
}

#[derive(Debug, Args)]
struct ServerSettings {
    /// Forwarding mode: dr, tunnel, nat, fullnat (default: the service's).
    #[arg(long)]
    forward: Option<String>,
    /// Weight 0..65535.
    #[arg(long, short = 'w')]
    weight: Option<u32>,
    /// Upper connection threshold.
    #[arg(long)]
    upper: Option<u32>,
    /// Lower connection threshold.
    #[arg(long)]
    lower: Option<u32>,
    /// Any other setting, by its YAML name.
    #[arg(long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
}

impl ServerSettings {
    fn mapping(&self) -> Result<Mapping, String> {
        let mut m = Mapping::new();
        if let Some(f) = &self.forward {
            m.insert("forward".into(), f.as_str().into());
        }
        if let Some(w) = self.weight {
            m.insert("weight".into(), w.into());
        }
        if let Some(u) = self.upper {
            m.insert("upper_threshold".into(), u.into());
        }
        if let Some(l) = self.lower {
            m.insert("lower_threshold".into(), l.into());
        }
        add_opts(&mut m, &self.opt)?;
        Ok(m)
    }
}

#[derive(Debug, Subcommand)]
enum ServerSub {
    /// Add a real server.
    Add {
        #[command(flatten)]
        server: ServerArg,
        #[command(flatten)]
        settings: ServerSettings,
    },
    /// Change the settings given; the others stay.
    Edit {
        #[command(flatten)]
        server: ServerArg,
        #[command(flatten)]
        settings: ServerSettings,
    },
    /// Delete a real server.
    Del {
        #[command(flatten)]
        server: ServerArg,
    },
}

#[derive(Debug, Subcommand)]
enum LaddrSub {
    /// Add a local address.
    Add {
        /// The address.
        address: IpAddr,
        /// The director port it lives on (default: the one whose subnet holds it).
        #[arg(long)]
        port: Option<String>,
    },
    /// Delete a local address.
    Del {
        /// The address.
        address: IpAddr,
    },
    /// List the local addresses.
    List,
}

#[derive(Debug, Subcommand)]
enum TimeoutSub {
    /// Print the timeouts (ipvsadm -L --timeout layout).
    List,
    /// Set timeouts by state name: `timeout set time_wait 30 fin_wait 60`.
    Set {
        /// STATE SECONDS pairs (states as in the YAML `timeouts` section; tcp and
        /// tcpfin are aliases of established and fin_wait).
        #[arg(num_args = 2.., required = true, value_name = "STATE SECONDS")]
        pairs: Vec<String>,
    },
}

impl Sub {
    fn into_action(self) -> Result<Action, String> {
        Ok(match self {
            Sub::List(a) => Action::List(ListSpec {
                format: if a.stats {
                    ListFormat::Stats
                } else if a.rate {
                    ListFormat::Rate
                } else if a.thresholds {
                    ListFormat::Thresholds
                } else {
                    ListFormat::Plain
                },
                exact: a.exact,
                service: a.service.key()?,
                nosort: false,
            }),
            Sub::Status => Action::Status,
            Sub::Reload => Action::Reload,
            Sub::Config => Action::ShowConfig,
            Sub::Save => Action::Save,
            Sub::Clear => Action::Apply(vec![Edit::Clear]),
            Sub::Restore { replace, file } => Action::Restore {
                input: file,
                replace,
            },
            Sub::Connections(s) => Action::Connections { service: s.key()? },
            Sub::Zero(s) => Action::Zero(s.key()?),
            Sub::Service(ServiceSub::Add { service, settings }) => {
                let key = service.key()?;
                let mut m = to_mapping(&ServiceConfig::with_defaults(
                    key.protocol,
                    key.address,
                    key.port,
                ));
                for (k, v) in settings.mapping()? {
                    m.insert(k, v);
                }
                Action::Apply(vec![Edit::AddService {
                    service: from_mapping(m).map_err(|e| format!("service {key}: {e}"))?,
                }])
            }
            Sub::Service(ServiceSub::Edit { service, settings }) => {
                Action::Apply(vec![Edit::EditService {
                    service: service.key()?,
                    set: settings.mapping()?,
                }])
            }
            Sub::Service(ServiceSub::Del { service }) => Action::Apply(vec![Edit::DeleteService {
                service: service.key()?,
            }]),
            Sub::Server(ServerSub::Add { server, settings }) => {
                let (service, address, port) = server.endpoint()?;
                let mut m = to_mapping(&RealServerConfig::with_defaults(address));
                if let Some(p) = port {
                    m.insert("port".into(), p.into());
                }
                for (k, v) in settings.mapping()? {
                    m.insert(k, v);
                }
                Action::Apply(vec![Edit::AddRealServer {
                    service,
                    server: from_mapping(m).map_err(|e| format!("real server: {e}"))?,
                }])
            }
            Sub::Server(ServerSub::Edit { server, settings }) => {
                let (service, address, port) = server.endpoint()?;
                Action::Apply(vec![Edit::EditRealServer {
                    service,
                    address,
                    port,
                    set: settings.mapping()?,
                }])
            }
            Sub::Server(ServerSub::Del { server }) => {
                let (service, address, port) = server.endpoint()?;
                Action::Apply(vec![Edit::DeleteRealServer {
                    service,
                    address,
                    port,
                }])
            }
            Sub::Laddr(LaddrSub::Add { address, port }) => {
                Action::Apply(vec![Edit::AddLocalAddress { address, port }])
            }
            Sub::Laddr(LaddrSub::Del { address }) => {
                Action::Apply(vec![Edit::DeleteLocalAddress { address }])
            }
            Sub::Laddr(LaddrSub::List) => Action::LocalAddresses,
            Sub::Timeout(TimeoutSub::List) => Action::Timeouts,
            Sub::Timeout(TimeoutSub::Set { pairs }) => {
                if pairs.len() % 2 != 0 {
                    return Err("timeout set takes STATE SECONDS pairs".into());
                }
                let mut edits = Vec::new();
                for pair in pairs.chunks(2) {
                    edits.push(Edit::SetTimeout {
                        state: pair[0].clone(),
                        seconds: parse_number(&pair[1], 1, u32::MAX, "timeout")?,
                    });
                }
                Action::Apply(edits)
            }
        })
    }
}

// ------------------------------------------------------------------ restore

/// Edits of an ipvsadm rules dump (`ipvsadm -S` output, one ipvsadm invocation per
/// line, the leading `ipvsadm` optional; blank lines and `#` comments skipped),
/// with the line number of each. Only edits can be restored.
pub fn parse_rules(text: &str) -> Result<(Vec<Edit>, Vec<usize>), String> {
    let mut edits = Vec::new();
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        let mut words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if words.first().is_some_and(|w| w.starts_with('#')) || words.is_empty() {
            continue;
        }
        if words[0] == "ipvsadm" || words[0].ends_with("/ipvsadm") || words[0] == "lb-ctl" {
            words.remove(0);
            if words.is_empty() {
                continue;
            }
        }
        let mut argv = vec!["lb-ctl".to_owned()];
        argv.extend(words);
        let cli = Ipvsadm::try_parse_from(&argv)
            .map_err(|e| format!("line {n}: {}", clap_message(&e)))?;
        if cli.json
            || argv
                .iter()
                .any(|a| a == "--socket" || a.starts_with("--socket="))
        {
            return Err(format!(
                "line {n}: --socket and --json cannot appear in rules"
            ));
        }
        match cli.into_action().map_err(|e| format!("line {n}: {e}"))? {
            Action::Apply(batch) => {
                lines.extend(std::iter::repeat_n(n, batch.len()));
                edits.extend(batch);
            }
            _ => {
                return Err(format!(
                    "line {n}: only -A -E -D -C -a -e -d --set --add-laddr --del-laddr can be \
                     restored"
                ))
            }
        }
    }
    Ok((edits, lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_core::service::ForwardMode;

    fn argv(line: &str) -> Vec<String> {
        std::iter::once("lb-ctl")
            .chain(line.split_whitespace())
            .map(str::to_owned)
            .collect()
    }

    fn action(line: &str) -> Result<Action, String> {
        match parse(&argv(line)) {
            Ok(inv) => Ok(inv.action),
            Err(ParseError::Message(m)) => Err(m),
            Err(ParseError::Exit(e)) => Err(format!("exit: {e}")),
        }
    }

    fn key(proto: Protocol, s: &str) -> ServiceKey {
        parse_service(proto, s).unwrap()
    }

    fn one_edit(line: &str) -> Edit {
        match action(line).unwrap() {
            Action::Apply(mut e) if e.len() == 1 => e.remove(0),
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn lists() {
        assert_eq!(action("").unwrap(), Action::List(ListSpec::default()));
        assert_eq!(action("-Ln").unwrap(), Action::List(ListSpec::default()));
        assert_eq!(
            action("-l -n --stats --exact").unwrap(),
            Action::List(ListSpec {
                format: ListFormat::Stats,
                exact: true,
                ..ListSpec::default()
            })
        );
        assert_eq!(
            action("-L -n --rate -t 10.0.0.100:80").unwrap(),
            Action::List(ListSpec {
                format: ListFormat::Rate,
                service: Some(key(Protocol::Tcp, "10.0.0.100:80")),
                ..ListSpec::default()
            })
        );
        assert_eq!(
            action("-Lnc").unwrap(),
            Action::Connections { service: None }
        );
        assert_eq!(action("-L --timeout").unwrap(), Action::Timeouts);
        assert_eq!(action("-S -n").unwrap(), Action::Save);
        assert_eq!(
            action("-Z -u 10.0.0.1:53").unwrap(),
            Action::Zero(Some(key(Protocol::Udp, "10.0.0.1:53")))
        );
        assert_eq!(action("-G").unwrap(), Action::LocalAddresses);
        assert_eq!(
            action("-L --stats --rate").unwrap_err(),
            "options conflicts in the list command"
        );
        assert_eq!(
            action("-L -c --stats").unwrap_err(),
            "options conflicts in the list command"
        );
    }

    #[test]
    fn ipvsadm_checks_options_like_ipvsadm() {
        assert_eq!(
            action("-A -t 10.0.0.1:80 -r 10.0.0.2").unwrap_err(),
            "Illegal 'real-server' option with the 'add-service' command"
        );
        assert_eq!(
            action("-a -t 10.0.0.1:80").unwrap_err(),
            "You need to supply the 'real-server' option for the 'add-server' command"
        );
        assert_eq!(action("-A -L").unwrap_err(), "multiple commands specified");
        assert_eq!(
            action("-a -t 10.0.0.1:80 -r 10.0.0.2 -m -g").unwrap_err(),
            "multiple 'forwarding-method' options specified"
        );
        assert_eq!(
            action("-A -t 10.0.0.1").unwrap_err(),
            "virtual server 10.0.0.1: the port is required (port-0 services are not supported)"
        );
        assert_eq!(
            action("-A -f 1").unwrap_err(),
            "firewall-mark services (-f) are not supported"
        );
        assert_eq!(
            action("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536").unwrap_err(),
            "weight: 65536 is not a valid weight (0..65535)"
        );
        assert_eq!(
            action("-A -t 10.0.0.1:80 -M 255.0.255.0").unwrap_err(),
            "illegal virtual server persistent mask specified"
        );
        assert!(action("-A -t 10.0.0.1:80 --bogus").is_err());
        assert!(action("-n")
            .unwrap_err()
            .starts_with("no command specified"));
    }

    #[test]
    fn add_service_with_ipvsadm_defaults() {
        let Edit::AddService { service } = one_edit("-A -t 10.0.0.100:80") else {
            panic!()
        };
        assert_eq!(service.scheduler, "wlc");
        assert_eq!(service.persistence, None);
        assert_eq!(service.forward, ForwardMode::Dr);
        let Edit::AddService { service } =
            one_edit("-A -u 10.0.0.100:53 -s sh -b flag-1,sh-port -p -M 255.255.255.0")
        else {
            panic!()
        };
        assert_eq!(service.protocol, Protocol::Udp);
        assert_eq!(service.scheduler_flags, ["sh-fallback", "sh-port"]);
        assert_eq!(service.persistence, Some(300));
        assert_eq!(service.persistence_prefix, 24);
        let Edit::AddService { service } = one_edit(
            "-A -t 10.0.0.100:80 -s mh -p 60 --opt mh_table_size=4093 --opt forward=fullnat",
        ) else {
            panic!()
        };
        assert_eq!(service.mh_table_size, Some(4093));
        assert_eq!(service.forward, ForwardMode::FullNat);
        assert_eq!(service.persistence, Some(60));
        assert!(action("-A -t 10.0.0.100:80 --opt nonsense=1")
            .unwrap_err()
            .contains("unknown field `nonsense`"));
    }

    #[test]
    fn edit_service_resets_what_ipvsadm_resets() {
        let Edit::EditService { service, set } = one_edit("-E -t 10.0.0.100:80 -s rr") else {
            panic!()
        };
        assert_eq!(service, key(Protocol::Tcp, "10.0.0.100:80"));
        let expected: Mapping = serde_yaml_ng::from_str(
            "{scheduler: rr, scheduler_flags: [], persistence: null, persistence_prefix: 32}",
        )
        .unwrap();
        assert_eq!(set, expected);
    }

    #[test]
    fn real_servers() {
        let Edit::AddRealServer { service, server } =
            one_edit("-a -t 10.0.0.100:80 -r 192.168.10.1:8080 -m -w 3 -x 100 -y 50")
        else {
            panic!()
        };
        assert_eq!(service.port, 80);
        assert_eq!(server.port, Some(8080));
        assert_eq!(server.forward, Some(ForwardMode::Nat));
        assert_eq!(
            (
                server.weight,
                server.upper_threshold,
                server.lower_threshold
            ),
            (3, 100, 50)
        );
        // Direct routing and tunnels use the virtual port, as ipvsadm forces.
        let Edit::AddRealServer { server, .. } =
            one_edit("-a -t 10.0.0.100:80 -r 192.168.10.1:8080 -g")
        else {
            panic!()
        };
        assert_eq!(server.port, Some(80));
        assert_eq!(server.forward, Some(ForwardMode::Dr));
        // No flag: the service's default forwarding mode.
        let Edit::AddRealServer { server, .. } = one_edit("-a -t 10.0.0.100:80 -r 192.168.10.1")
        else {
            panic!()
        };
        assert_eq!(
            (server.port, server.forward, server.weight),
            (None, None, 1)
        );
        let Edit::AddRealServer { server, .. } =
            one_edit("-a -t 10.0.0.100:80 -r 192.168.10.1 --fullnat -w 0")
        else {
            panic!()
        };
        assert_eq!(server.forward, Some(ForwardMode::FullNat));
        assert_eq!(server.weight, 0);
        // -e replaces every setting: defaults for what is not given.
        let Edit::EditRealServer {
            address, port, set, ..
        } = one_edit("-e -t 10.0.0.100:80 -r 192.168.10.1:80 -w 5")
        else {
            panic!()
        };
        assert_eq!((address, port), ("192.168.10.1".parse().unwrap(), Some(80)));
        assert_eq!(set.get("weight"), Some(&Value::from(5)));
        assert_eq!(set.get("forward"), Some(&Value::Null));
        assert_eq!(set.get("upper_threshold"), Some(&Value::from(0)));
        assert!(set.get("address").is_none());
        let Edit::DeleteRealServer { address, port, .. } =
            one_edit("-d -t 10.0.0.100:80 -r 192.168.10.1")
        else {
            panic!()
        };
        assert_eq!((address, port), ("192.168.10.1".parse().unwrap(), None));
    }

    #[test]
    fn timeouts_and_local_addresses() {
        assert_eq!(
            one_edit("--set 900 0 300"),
            Edit::SetTimeouts {
                tcp: 900,
                tcpfin: 0,
                udp: 300
            }
        );
        assert_eq!(
            one_edit("--add-laddr -z 10.0.2.101 --ifname server -t 10.0.1.100:80"),
            Edit::AddLocalAddress {
                address: "10.0.2.101".parse().unwrap(),
                port: Some("server".into())
            }
        );
        assert_eq!(
            one_edit("-Q -z 10.0.2.101"),
            Edit::DeleteLocalAddress {
                address: "10.0.2.101".parse().unwrap()
            }
        );
        assert_eq!(
            action("timeout set time_wait 30 tcp 60").unwrap(),
            Action::Apply(vec![
                Edit::SetTimeout {
                    state: "time_wait".into(),
                    seconds: 30
                },
                Edit::SetTimeout {
                    state: "tcp".into(),
                    seconds: 60
                },
            ])
        );
        assert!(action("timeout set time_wait").is_err());
    }

    #[test]
    fn scripted_form() {
        let inv = parse(&argv("--socket /tmp/x.sock --json status")).unwrap();
        assert_eq!(inv.socket, PathBuf::from("/tmp/x.sock"));
        assert!(inv.json);
        assert_eq!(inv.action, Action::Status);
        let Action::Apply(edits) =
            action("service add tcp 10.0.0.100:80 --scheduler rr --persistent 60").unwrap()
        else {
            panic!()
        };
        let Edit::AddService { service } = &edits[0] else {
            panic!()
        };
        assert_eq!(service.scheduler, "rr");
        assert_eq!(service.forward, ForwardMode::FullNat);
        assert_eq!(service.persistence, Some(60));
        // An edit changes only what it names.
        let Action::Apply(edits) = action("service edit udp 10.0.0.100:53 --persistent 0").unwrap()
        else {
            panic!()
        };
        let Edit::EditService { set, .. } = &edits[0] else {
            panic!()
        };
        assert_eq!(set.len(), 1);
        assert_eq!(set.get("persistence"), Some(&Value::Null));
        let Action::Apply(edits) =
            action("server edit tcp 10.0.0.100:80 10.0.2.11 --weight 4").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            edits[0],
            Edit::EditRealServer {
                service: key(Protocol::Tcp, "10.0.0.100:80"),
                address: "10.0.2.11".parse().unwrap(),
                port: None,
                set: serde_yaml_ng::from_str("{weight: 4}").unwrap(),
            }
        );
        assert_eq!(
            action("restore --replace /tmp/rules").unwrap(),
            Action::Restore {
                input: Some("/tmp/rules".into()),
                replace: true
            }
        );
        assert_eq!(
            action("connections tcp 10.0.0.100:80").unwrap(),
            Action::Connections {
                service: Some(key(Protocol::Tcp, "10.0.0.100:80"))
            }
        );
        assert!(action("zero tcp").is_err());
    }

    #[test]
    fn restore_reads_ipvsadm_dumps() {
        let dump = "\
# saved by ipvsadm -S -n
-A -t 10.0.0.100:80 -s wlc -p 300 -M 255.255.255.0
-a -t 10.0.0.100:80 -r 192.168.10.1:80 -m -w 1

ipvsadm -a -t 10.0.0.100:80 -r 192.168.10.2:80 -g -w 2
/sbin/ipvsadm -A -u 10.0.0.100:53 -s rr
-a -u 10.0.0.100:53 -r 192.168.10.3:53 -i -w 0
";
        let (edits, lines) = parse_rules(dump).unwrap();
        assert_eq!(lines, [2, 3, 5, 6, 7]);
        assert_eq!(edits.len(), 5);
        assert!(matches!(&edits[4], Edit::AddRealServer { server, .. }
            if server.forward == Some(ForwardMode::Tunnel) && server.weight == 0));
        assert_eq!(
            parse_rules("-A -t 10.0.0.1:80\n-L -n\n").unwrap_err(),
            "line 2: only -A -E -D -C -a -e -d --set --add-laddr --del-laddr can be restored"
        );
        assert_eq!(
            parse_rules("-A -t 10.0.0.1:80 -s\n").unwrap_err(),
            "line 1: a value is required for '--scheduler <SCHEDULER>' but none was supplied"
        );
    }

    #[test]
    fn netmasks() {
        assert_eq!(parse_netmask("255.255.255.0"), Ok(24));
        assert_eq!(parse_netmask("255.255.255.255"), Ok(32));
        assert_eq!(parse_netmask("0.0.0.0"), Ok(0));
        assert_eq!(parse_netmask("16"), Ok(16));
        assert!(parse_netmask("255.0.0.255").is_err());
    }

    #[test]
    fn endpoints() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(parse_endpoint("10.0.0.1"), Ok((v4, None)));
        assert_eq!(parse_endpoint("10.0.0.1:80"), Ok((v4, Some(80))));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse_endpoint("[2001:db8::1]:443"), Ok((v6, Some(443))));
        assert_eq!(parse_endpoint("2001:db8::1"), Ok((v6, None)));
        assert!(parse_endpoint("host.example:80").is_err());
        assert!(parse_endpoint("10.0.0.1:99999").is_err());
    }
}

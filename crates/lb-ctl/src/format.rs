//! ipvsadm's listing formats, reproduced column for column so that scripts written
//! against `ipvsadm -L -n` read lb-ctl's output unchanged.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

use lb_core::api::{RealServerView, ServiceView, StatusView};
use lb_core::service::TrafficTotals;

/// Which ipvsadm listing to print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListFormat {
    /// `-L`: scheduler, forward, weight, connections.
    #[default]
    Plain,
    /// `-L --stats`.
    Stats,
    /// `-L --thresholds`.
    Thresholds,
}

/// An address and port as ipvsadm prints them (`[v6]:port` for IPv6).
pub fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// ipvsadm's `print_largenum`: 9 columns, K/M/G/T above 1e8 unless `exact`.
fn largenum(out: &mut String, n: u64, exact: bool) {
    if exact {
        let width = n.to_string().len();
        let _ = write!(out, "{n:>w$}", w = if width <= 8 { 9 } else { width + 1 });
    } else if n < 100_000_000 {
        let _ = write!(out, "{n:>9}");
    } else if n < 1_000_000_000 {
        let _ = write!(out, "{:>8}K", n / 1_000);
    } else if n < 100_000_000_000 {
        let _ = write!(out, "{:>8}M", n / 1_000_000);
    } else if n < 100_000_000_000_000 {
        let _ = write!(out, "{:>8}G", n / 1_000_000_000);
    } else {
        let _ = write!(out, "{:>8}T", n / 1_000_000_000_000);
    }
}

fn stats_columns(out: &mut String, s: &TrafficTotals, exact: bool) {
    for n in [
        s.conns,
        s.in_packets,
        s.out_packets,
        s.in_bytes,
        s.out_bytes,
    ] {
        largenum(out, n, exact);
    }
    out.push('\n');
}

fn service_name(s: &ServiceView) -> String {
    format!(
        "{}  {}",
        s.protocol.upper_name(),
        endpoint(s.address, s.port)
    )
}

fn prefix_to_mask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(bits)
}

/// The whole `-L` listing.
pub fn list(
    conn_capacity: u64,
    services: &[ServiceView],
    format: ListFormat,
    exact: bool,
) -> String {
    let mut out = format!("IP Virtual Server version 1.2.1 (size={conn_capacity})\n");
    out.push_str(match format {
        ListFormat::Plain => {
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        }
        ListFormat::Stats => {
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n  -> RemoteAddress:Port\n"
        }
        ListFormat::Thresholds => {
            "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n  -> RemoteAddress:Port\n"
        }
    });
    for s in services {
        service_line(&mut out, s, format, exact);
        for d in &s.real_servers {
            real_server_line(&mut out, d, format, exact);
        }
    }
    out
}

fn service_line(out: &mut String, s: &ServiceView, format: ListFormat, exact: bool) {
    let name = service_name(s);
    match format {
        ListFormat::Stats => {
            let _ = write!(out, "{name:<33}");
            stats_columns(out, &s.stats, exact);
        }
        ListFormat::Plain | ListFormat::Thresholds => {
            let _ = write!(out, "{name} {}", s.scheduler);
            if !s.scheduler_flags.is_empty() {
                let _ = write!(out, " ({})", s.scheduler_flags.join(","));
            }
            if let Some(timeout) = s.persistence {
                let _ = write!(out, " persistent {timeout}");
                if s.address.is_ipv4() && s.persistence_prefix < 32 {
                    let _ = write!(out, " mask {}", prefix_to_mask(s.persistence_prefix));
                }
            }
            out.push('\n');
        }
    }
}

fn real_server_line(out: &mut String, d: &RealServerView, format: ListFormat, exact: bool) {
    let name = endpoint(d.address, d.port);
    match format {
        ListFormat::Plain => {
            let _ = writeln!(
                out,
                "  -> {name:<28} {:<7} {:<6} {:<10} {:<10}",
                d.forward.ipvsadm_name(),
                d.weight,
                d.active,
                d.inactive
            );
        }
        ListFormat::Stats => {
            let _ = write!(out, "  -> {name:<28}");
            stats_columns(out, &d.stats, exact);
        }
        ListFormat::Thresholds => {
            let _ = writeln!(
                out,
                "  -> {name:<28} {:<10} {:<10} {:<10} {:<10}",
                d.upper_threshold, d.lower_threshold, d.active, d.inactive
            );
        }
    }
}

/// Director status: workers, drops by reason, ports.
pub fn status(s: &StatusView) -> String {
    let mut out = format!("Configuration generation {}\n", s.generation);
    out.push_str("Worker   RxPkts   TxPkts  ConnsNew  ConnsLive  Drops\n");
    for w in &s.workers {
        let drops: u64 = w.drops.iter().map(|(_, n)| n).sum();
        let _ = writeln!(
            out,
            "{:<6} {:>8} {:>8} {:>9} {:>10} {:>6}",
            w.id, w.rx_packets, w.tx_packets, w.conns_created, w.conns_live, drops
        );
        for (reason, n) in w.drops.iter().filter(|(_, n)| *n > 0) {
            let _ = writeln!(out, "         drop {reason}: {n}");
        }
    }
    out.push_str("Port                 Device            MAC                  RxPkts   TxPkts  Missed  Errors\n");
    for p in &s.ports {
        let _ = writeln!(
            out,
            "{:<20} {:<17} {:<17} {:>9} {:>8} {:>7} {:>7}",
            p.name,
            p.device,
            p.mac,
            p.rx_packets,
            p.tx_packets,
            p.rx_missed,
            p.rx_errors + p.tx_errors
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_core::service::{ForwardMode, Protocol};

    fn service() -> ServiceView {
        ServiceView {
            protocol: Protocol::Tcp,
            address: "10.0.0.100".parse().unwrap(),
            port: 80,
            scheduler: "wlc".into(),
            scheduler_flags: vec![],
            persistence: Some(300),
            persistence_prefix: 24,
            stats: TrafficTotals {
                conns: 39835,
                in_packets: 1_030_000_000,
                out_packets: 863_494_000,
                in_bytes: 150_000_000_000,
                out_bytes: 203_000_000_000,
            },
            real_servers: vec![RealServerView {
                address: "192.168.10.1".parse().unwrap(),
                port: 80,
                forward: ForwardMode::Nat,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
                active: 0,
                inactive: 0,
                stats: TrafficTotals {
                    conns: 3,
                    in_packets: 33,
                    out_packets: 33,
                    in_bytes: 1989,
                    out_bytes: 4938,
                },
            }],
        }
    }

    /// `ipvsadm -Ln` as documented (reference section 3).
    #[test]
    fn plain_listing_matches_ipvsadm() {
        let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.100:80 wlc persistent 300 mask 255.255.255.0
  -> 192.168.10.1:80              Masq    1      0          0         
";
        assert_eq!(list(4096, &[service()], ListFormat::Plain, false), expected);
    }

    /// `ipvsadm -Ln --stats`, including the K/M/G suffixes of large numbers.
    #[test]
    fn stats_listing_matches_ipvsadm() {
        let expected = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
  -> RemoteAddress:Port
TCP  10.0.0.100:80                   39835    1030M  863494K     150G     203G
  -> 192.168.10.1:80                     3       33       33     1989     4938
";
        assert_eq!(list(4096, &[service()], ListFormat::Stats, false), expected);
        let exact = list(4096, &[service()], ListFormat::Stats, true);
        assert!(exact.contains("TCP  10.0.0.100:80                   39835 1030000000 863494000 150000000000 203000000000\n"), "{exact}");
    }

    #[test]
    fn flags_and_plain_services() {
        let mut s = service();
        s.persistence = None;
        s.scheduler = "sh".into();
        s.scheduler_flags = vec!["sh-fallback".into(), "sh-port".into()];
        s.real_servers[0].forward = ForwardMode::FullNat;
        let out = list(4096, &[s], ListFormat::Plain, false);
        assert!(
            out.contains("TCP  10.0.0.100:80 sh (sh-fallback,sh-port)\n"),
            "{out}"
        );
        assert!(
            out.contains("  -> 192.168.10.1:80              FullNat 1"),
            "{out}"
        );
    }
}

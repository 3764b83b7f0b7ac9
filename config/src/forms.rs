//! The YAML and JSON form of the lb-core types the configuration and the control
//! protocol name. lb-core keeps them plain Rust; these are serde's remote
//! definitions of them (same names, same defaults), used with `#[serde(with)]`.

use lb_core::conn::Timeouts;
use lb_core::policy::{IpOptionsPolicy, Policies, RpFilter};
use lb_core::route::Ipv4Cidr;
use lb_core::service::{Carrier, ForwardMode, Protocol, TrafficTotals, TunnelType};
use lb_core::wire::MacAddr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(remote = "Protocol", rename_all = "lowercase")]
pub(crate) enum ProtocolForm {
    Tcp,
    Udp,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "ForwardMode", rename_all = "lowercase")]
pub(crate) enum ForwardModeForm {
    Dr,
    Tunnel,
    Nat,
    FullNat,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "TunnelType", rename_all = "lowercase")]
pub(crate) enum TunnelTypeForm {
    Ipip,
    Gue,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Carrier", rename_all = "kebab-case")]
pub(crate) enum CarrierForm {
    None,
    Toa,
    ProxyV1,
    ProxyV2,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "RpFilter", rename_all = "lowercase")]
pub(crate) enum RpFilterForm {
    Strict,
    Loose,
    Off,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "IpOptionsPolicy", rename_all = "lowercase")]
pub(crate) enum IpOptionsPolicyForm {
    Drop,
    Forward,
}

#[derive(Serialize, Deserialize)]
#[serde(
    remote = "Policies",
    deny_unknown_fields,
    default = "Policies::default"
)]
pub(crate) struct PoliciesForm {
    expire_nodest_conn: bool,
    conn_reuse: bool,
    expire_quiescent_template: bool,
    #[serde(with = "IpOptionsPolicyForm")]
    ip_options: IpOptionsPolicy,
    tcp_window_check: bool,
}

/// Field names are IPVS's state names; `tcp` and `tcpfin` are ipvsadm's names for
/// `established` and `fin_wait`.
#[derive(Serialize, Deserialize)]
#[serde(
    remote = "Timeouts",
    deny_unknown_fields,
    default = "Timeouts::default"
)]
pub(crate) struct TimeoutsForm {
    none: u32,
    #[serde(alias = "tcp")]
    established: u32,
    syn_sent: u32,
    syn_recv: u32,
    #[serde(alias = "tcpfin")]
    fin_wait: u32,
    time_wait: u32,
    close: u32,
    close_wait: u32,
    last_ack: u32,
    listen: u32,
    synack: u32,
    udp: u32,
    icmp: u32,
}

/// [`Timeouts`] as a type of its own, for code that serialises it generically.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct TimeoutsValue(#[serde(with = "TimeoutsForm")] pub(crate) Timeouts);

#[derive(Serialize, Deserialize)]
#[serde(remote = "TrafficTotals")]
pub(crate) struct TrafficTotalsForm {
    conns: u64,
    in_packets: u64,
    out_packets: u64,
    in_bytes: u64,
    out_bytes: u64,
}

/// An optional forwarding mode.
pub(crate) mod option_forward_mode {
    use super::*;

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct Value(#[serde(with = "ForwardModeForm")] ForwardMode);

    pub(crate) fn serialize<S: Serializer>(
        v: &Option<ForwardMode>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        v.map(Value).serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<ForwardMode>, D::Error> {
        Ok(Option::<Value>::deserialize(d)?.map(|v| v.0))
    }
}

/// A network as `ADDRESS/PREFIX` text.
pub(crate) mod cidr {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(net: &Ipv4Cidr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(net)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Ipv4Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A MAC address as `aa:bb:cc:dd:ee:ff` text.
pub(crate) mod mac {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(mac: &MacAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(mac)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MacAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|_| serde::de::Error::custom(format!("'{s}' is not a MAC address")))
    }
}

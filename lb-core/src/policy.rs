//! The operator's policies the workers apply: reverse-path filtering per port,
//! what to do with IPv4 options, and the connection lifecycle switches IPVS
//! exposes as sysctls.

/// How a port checks the source of what it receives against the routes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RpFilter {
    /// The route to the source must point out of the receiving port.
    #[default]
    Strict,
    /// Some route to the source must exist.
    Loose,
    /// No check.
    Off,
}

/// What happens to packets with IPv4 options addressed to a VIP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum IpOptionsPolicy {
    /// Drop every packet with options (counted as `ip_options`).
    #[default]
    Drop,
    /// Forward packets whose options are all known to be harmless (EOL, NOP,
    /// router alert); record route, timestamp, source routes and anything
    /// unknown are still dropped.
    Forward,
}

/// Connection lifecycle policies, as IPVS's sysctls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policies {
    /// A connection whose real server was removed dies on its next packet
    /// (`expire_nodest_conn`); otherwise its packets are dropped until it times out.
    pub expire_nodest_conn: bool,
    /// A SYN on a TIME_WAIT or CLOSE entry is scheduled afresh (`conn_reuse_mode`).
    pub conn_reuse: bool,
    /// A persistence template whose real server is quiescent (weight 0) is
    /// invalidated (`expire_quiescent_template`).
    pub expire_quiescent_template: bool,
    /// Packets with IPv4 options to a VIP: `drop` (default) or `forward` the
    /// known-harmless ones. Malformed option lists are always dropped.
    pub ip_options: IpOptionsPolicy,
    /// TCP segments of NAT and FullNAT connections must fall within the
    /// sequence window Linux conntrack would accept (`tcp_out_of_window`);
    /// `false` forwards them as conntrack's `tcp_be_liberal` does.
    pub tcp_window_check: bool,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            expire_nodest_conn: true,
            conn_reuse: true,
            expire_quiescent_template: false,
            ip_options: IpOptionsPolicy::Drop,
            tcp_window_check: true,
        }
    }
}

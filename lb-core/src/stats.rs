//! Counters written by exactly one worker and read by the control thread.
//!
//! Each counter is an `AtomicU64` updated with a relaxed load and store rather than
//! a read-modify-write: with a single writer that is as cheap as a plain add (no
//! locked instruction) and the reader still never sees a torn value.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Must only be called by the counter's owning worker.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// The current value, from any thread.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A level with a single writer (e.g. connections currently open on one worker).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Raises the level by one. Owner only.
    #[inline]
    pub fn inc(&self) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    /// Lowers the level by one, never below zero. Owner only.
    #[inline]
    pub fn dec(&self) {
        self.0.store(
            self.0.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
    }

    /// The current level, from any thread.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Declares a struct of [`Counter`]s indexed by a matching reason enum, so that every
/// drop reason has a counter, a stable metric label and a human name in one place.
macro_rules! reason_counters {
    ($(#[$doc:meta])* $reason:ident, $counters:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $reason {
            $($(#[$vdoc])* $variant,)*
        }

        impl $reason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [$reason] = &[$($reason::$variant,)*];

            /// Stable snake_case label used in metrics and listings.
            pub fn label(self) -> &'static str {
                match self {
                    $($reason::$variant => $label,)*
                }
            }
        }

        /// One counter per reason.
        #[derive(Debug)]
        pub struct $counters {
            counts: [Counter; $reason::ALL.len()],
        }

        impl Default for $counters {
            fn default() -> Self {
                $counters {
                    counts: std::array::from_fn(|_| Counter::default()),
                }
            }
        }

        impl $counters {
            /// Counts one occurrence of `reason`.
            #[inline]
            pub fn inc(&self, reason: $reason) {
                self.counts[reason as usize].inc();
            }

            /// Counts `n` occurrences of `reason`.
            #[inline]
            pub fn add(&self, reason: $reason, n: u64) {
                self.counts[reason as usize].add(n);
            }

            /// The count for `reason`.
            pub fn get(&self, reason: $reason) -> u64 {
                self.counts[reason as usize].get()
            }

            /// `(label, count)` for every reason.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                $reason::ALL.iter().map(move |r| (r.label(), self.get(*r)))
            }
        }
    };
}

reason_counters!(
    /// Why the worker dropped a frame.
    DropReason, DropCounters {
        /// Too short or inconsistent headers, bad IP header checksum.
        Malformed => "malformed",
        /// An Ethernet type the director does not handle (more than two VLAN
        /// tags included).
        UnsupportedEthertype => "unsupported_ethertype",
        /// A VLAN-tagged frame for a VLAN none of the director's ports is on.
        UnknownVlan => "unknown_vlan",
        /// An IP protocol the director does not handle for this address.
        UnsupportedProtocol => "unsupported_protocol",
        /// Addressed to a VIP and port with no service.
        NoService => "no_service",
        /// Addressed to an IP the director does not own (it is not a router).
        NotLocal => "not_local",
        /// ARP or ICMP for an address the director does not own.
        IgnoredForeign => "ignored_foreign",
        /// The service has no real server available.
        NoDest => "no_dest",
        /// No local port free for a FullNAT connection.
        NoLocalPort => "no_local_port",
        /// The connection table is full.
        TableFull => "table_full",
        /// No route to the destination.
        NoRoute => "no_route",
        /// Next hop's MAC not yet resolved; an ARP request was sent.
        NeighUnresolved => "neigh_unresolved",
        /// TTL would reach zero.
        TtlExceeded => "ttl_exceeded",
        /// IP fragments of a protocol other than TCP and UDP (the fragment
        /// policy forwards TCP and UDP fragments, see `crate::frag`).
        Fragment => "fragment",
        /// A packet of a connection whose real server was removed.
        DestRemoved => "dest_removed",
        /// A non-SYN TCP segment with no connection.
        NoConnection => "no_connection",
        /// A TCP segment outside the connection's sequence window (a blind
        /// injection or reset); `policies.tcp_window_check` turns the check off.
        TcpOutOfWindow => "tcp_out_of_window",
        /// A packet matching a connection's tuple that arrived on another port
        /// than that direction of the connection uses (forged across sides).
        WrongSide => "wrong_side",
        /// Rewrite needed more room than the buffer has.
        NoRoom => "no_room",
        /// The egress ring of the port was full.
        TxFull => "tx_full",
        /// The ring to the owning worker was full.
        RedirectRingFull => "redirect_ring_full",
        /// An ICMP error the director would have sent was over its rate limit.
        IcmpRateLimited => "icmp_rate_limited",
        /// A non-first fragment whose first fragment was not seen (or has expired
        /// from the fragment map).
        FragUnmatched => "frag_unmatched",
        /// A packet too big for the egress MTU once encapsulated, without DF (the
        /// director does not fragment); DF packets get ICMP fragmentation-needed.
        TooBig => "too_big",
        /// An ICMP error about no tracked connection.
        IcmpNoConnection => "icmp_no_connection",
        /// An ICMP message the director does not handle (not an echo request to
        /// one of its addresses, not an error about a connection).
        IcmpUnsupported => "icmp_unsupported",
        /// A frame whose destination MAC is neither the port's, nor broadcast
        /// for ARP, nor a multicast group the director has joined.
        ForeignMac => "foreign_mac",
        /// A source that never appears on a wire: 0.0.0.0/8, 127.0.0.0/8,
        /// multicast, 240.0.0.0/4 (broadcast included), or the receiving port's
        /// subnet broadcast.
        MartianSource => "martian_source",
        /// A source that is one of the director's own addresses (port address,
        /// VIP, local address).
        OwnSource => "own_source",
        /// Source and destination addresses are equal (land attack).
        LandPacket => "land",
        /// The source's route does not point out of the receiving port (strict
        /// reverse-path check), or there is no route back at all (loose).
        ReversePath => "reverse_path",
        /// IPv4 options on a packet to a VIP that the options policy refuses.
        IpOptions => "ip_options",
        /// An IPv4 option list that does not parse (zero or overlong length).
        MalformedOptions => "malformed_options",
    }
);

/// Per-worker counters, summed by the control thread.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Frames received.
    pub rx_packets: Counter,
    /// Bytes received.
    pub rx_bytes: Counter,
    /// Frames handed to a TX queue.
    pub tx_packets: Counter,
    /// Bytes handed to a TX queue.
    pub tx_bytes: Counter,
    /// ARP replies sent for VIPs and local addresses.
    pub arp_replies: Counter,
    /// ARP requests sent to resolve next hops.
    pub arp_requests: Counter,
    /// ICMP echo replies sent.
    pub icmp_echo_replies: Counter,
    /// Connections created.
    pub conns_created: Counter,
    /// Connections expired.
    pub conns_expired: Counter,
    /// Connections currently in the worker's table.
    pub conns_live: Gauge,
    /// ICMP port unreachable sent because no real server was available.
    pub icmp_unreachable_sent: Counter,
    /// Frames handed to the worker that owns their connection.
    pub redirects_out: Counter,
    /// Frames other workers handed to this one.
    pub redirects_in: Counter,
    /// Drops by reason.
    pub drops: DropCounters,
    /// What the forwarding modes sent, per mode and per feature.
    pub modes: ModeCounters,
    /// What the defences against hostile traffic did.
    pub defence: DefenceCounters,
}

/// Declares a struct of [`Counter`]s with a stable label for each, for listings.
macro_rules! labelled_counters {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident => $label:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fdoc])* pub $field: Counter,)*
        }

        impl $name {
            /// `(label, count)` for every counter, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
                [$(($label, &self.$field),)*].into_iter().map(|(l, c)| (l, c.get()))
            }
        }
    };
}

labelled_counters!(
    /// What the defences against hostile traffic did, beyond the drops they count.
    DefenceCounters {
        /// ICMP time exceeded sent for packets whose TTL would expire.
        icmp_time_exceeded_sent => "icmp_time_exceeded_sent",
        /// Half-open connections given the short timeout because local ports or
        /// the table ran low (counted per packet that set it).
        halfopen_short_timeout => "halfopen_short_timeout",
        /// Half-open connections removed to make room for a new connection.
        halfopen_evicted => "halfopen_evicted",
        /// Resets sent to real servers for half-open connections the director
        /// removed (evicted or expired), so the server frees its half too.
        halfopen_reset_sent => "halfopen_reset_sent",
    }
);

labelled_counters!(
    /// Per forwarding mode: packets sent each way, and the mode-specific work
    /// (encapsulation, client-address carriers, ICMP, fragments).
    ModeCounters {
        /// DR packets sent to real servers.
        dr_to_server => "dr_to_server",
        /// IPIP-encapsulated packets sent to real servers.
        tun_ipip_to_server => "tun_ipip_to_server",
        /// GUE-encapsulated packets sent to real servers.
        tun_gue_to_server => "tun_gue_to_server",
        /// NAT packets sent to real servers.
        nat_to_server => "nat_to_server",
        /// NAT replies sent to clients.
        nat_to_client => "nat_to_client",
        /// FullNAT packets sent to real servers.
        fullnat_to_server => "fullnat_to_server",
        /// FullNAT replies sent to clients.
        fullnat_to_client => "fullnat_to_client",
        /// SYNs whose MSS was clamped for a tunnel.
        tun_mss_clamped => "tun_mss_clamped",
        /// ICMP fragmentation-needed sent for DF packets too big once encapsulated.
        icmp_frag_needed_sent => "icmp_frag_needed_sent",
        /// TOA options inserted.
        toa_inserted => "toa_inserted",
        /// TOA options the client sent, blanked out.
        toa_stripped => "toa_stripped",
        /// Segments that had no room for the TOA (no option space or over MTU).
        toa_no_room => "toa_no_room",
        /// Connections that never got a TOA because no segment had room.
        toa_given_up => "toa_given_up",
        /// PROXY protocol headers inserted (retransmissions included).
        proxy_inserted => "proxy_inserted",
        /// Segments whose sequence or acknowledgement number was shifted for a
        /// PROXY header.
        proxy_seq_adjusted => "proxy_seq_adjusted",
        /// MSS options lowered in SYN-ACKs to leave room for a carrier.
        mss_lowered => "mss_lowered",
        /// ICMP errors translated and sent to the client.
        icmp_to_client => "icmp_to_client",
        /// ICMP errors translated and sent to the real server.
        icmp_to_server => "icmp_to_server",
        /// First fragments forwarded (and learned in the fragment map).
        frag_first => "frag_first",
        /// Non-first fragments forwarded through the fragment map.
        frag_forwarded => "frag_forwarded",
        /// Fragment-map entries overwritten while still live (map too small).
        frag_evicted => "frag_evicted",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_distinct_label() {
        let mut labels: Vec<_> = DropReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), DropReason::ALL.len());
    }

    #[test]
    fn counters_count() {
        let c = WorkerCounters::default();
        c.drops.inc(DropReason::NoService);
        c.drops.inc(DropReason::NoService);
        c.rx_packets.add(5);
        c.conns_live.inc();
        c.conns_live.dec();
        c.conns_live.dec();
        assert_eq!(c.drops.get(DropReason::NoService), 2);
        assert_eq!(c.rx_packets.get(), 5);
        assert_eq!(c.conns_live.get(), 0);
    }
}

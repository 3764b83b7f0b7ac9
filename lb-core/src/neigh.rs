//! The neighbour (ARP) table of one worker.
//!
//! Entries are learned from ARP replies and from requests addressed to the director,
//! confirmed for [`REACHABLE`], then used while a refresh request goes out, and
//! forgotten after [`STALE_LIMIT`] without confirmation. Requests for one address
//! are sent at most once per [`REQUEST_INTERVAL`]. The table is sized once; when it
//! is full, new dynamic entries are not learned (static ones always are).

use std::net::Ipv4Addr;
use std::time::Duration;

use hashbrown::HashMap;

use crate::ids::PortId;
use crate::time::Instant;
use crate::wire::MacAddr;

/// How long a confirmed entry is used without asking again.
pub const REACHABLE: Duration = Duration::from_secs(60);
/// How long an unconfirmed entry is still used (while refresh requests go out).
pub const STALE_LIMIT: Duration = Duration::from_secs(300);
/// Least time between two requests for the same address.
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
enum State {
    Static,
    Dynamic { confirmed: Instant },
    Incomplete,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    mac: MacAddr,
    port: PortId,
    state: State,
    last_request: Option<Instant>,
}

/// What the caller should do to reach a neighbour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The MAC to send to, if known.
    pub mac: Option<MacAddr>,
    /// Whether to send an ARP request for the address now.
    pub send_request: bool,
}

/// A neighbour table.
#[derive(Debug)]
pub struct NeighTable {
    entries: HashMap<Ipv4Addr, Entry>,
    capacity: usize,
}

impl NeighTable {
    /// A table of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        NeighTable {
            entries: HashMap::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds a static entry (never expires, never replaced by learning).
    pub fn add_static(&mut self, ip: Ipv4Addr, mac: MacAddr, port: PortId) {
        self.entries.insert(
            ip,
            Entry {
                mac,
                port,
                state: State::Static,
                last_request: None,
            },
        );
    }

    /// Records that `ip` is at `mac` behind `port`.
    pub fn learn(&mut self, ip: Ipv4Addr, mac: MacAddr, port: PortId, now: Instant) {
        if mac.is_multicast() || mac == MacAddr::ZERO {
            return;
        }
        let full = self.entries.len() >= self.capacity;
        match self.entries.get_mut(&ip) {
            Some(Entry {
                state: State::Static,
                ..
            }) => {}
            Some(e) => {
                e.mac = mac;
                e.port = port;
                e.state = State::Dynamic { confirmed: now };
            }
            None if !full => {
                self.entries.insert(
                    ip,
                    Entry {
                        mac,
                        port,
                        state: State::Dynamic { confirmed: now },
                        last_request: None,
                    },
                );
            }
            None => {}
        }
    }

    /// How to reach `ip` behind `port` at `now`: the MAC if usable, and whether an
    /// ARP request should go out (first use, refresh of an aging entry, retry).
    pub fn resolve(&mut self, ip: Ipv4Addr, port: PortId, now: Instant) -> Resolution {
        let full = self.entries.len() >= self.capacity;
        let entry = match self.entries.get_mut(&ip) {
            Some(e) => e,
            None if full => {
                return Resolution {
                    mac: None,
                    send_request: false,
                }
            }
            None => self.entries.entry(ip).or_insert(Entry {
                mac: MacAddr::ZERO,
                port,
                state: State::Incomplete,
                last_request: None,
            }),
        };
        let (mac, wants_request) = match entry.state {
            State::Static => (Some(entry.mac), false),
            State::Dynamic { confirmed } => {
                let age = now.saturating_since(confirmed);
                if age >= STALE_LIMIT {
                    entry.state = State::Incomplete;
                    (None, true)
                } else {
                    (Some(entry.mac), age >= REACHABLE)
                }
            }
            State::Incomplete => (None, true),
        };
        let due = entry
            .last_request
            .is_none_or(|t| now.saturating_since(t) >= REQUEST_INTERVAL);
        let send_request = wants_request && due;
        if send_request {
            entry.last_request = Some(now);
        }
        Resolution { mac, send_request }
    }

    /// `(ip, mac, port, is_static)` for every resolved entry.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Addr, MacAddr, PortId, bool)> + '_ {
        self.entries.iter().filter_map(|(ip, e)| match e.state {
            State::Incomplete => None,
            State::Static => Some((*ip, e.mac, e.port, true)),
            State::Dynamic { .. } => Some((*ip, e.mac, e.port, false)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 11);
    const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 11]);

    fn secs(s: u64) -> Instant {
        Instant(s * 1_000_000_000)
    }

    #[test]
    fn unknown_address_requests_once_per_interval_until_learned() {
        let mut t = NeighTable::new(4);
        let r = t.resolve(IP, PortId(1), secs(10));
        assert_eq!(
            r,
            Resolution {
                mac: None,
                send_request: true
            }
        );
        assert!(!t.resolve(IP, PortId(1), secs(10)).send_request);
        assert!(t.resolve(IP, PortId(1), secs(11)).send_request);
        t.learn(IP, MAC, PortId(1), secs(11));
        assert_eq!(
            t.resolve(IP, PortId(1), secs(12)),
            Resolution {
                mac: Some(MAC),
                send_request: false
            }
        );
    }

    #[test]
    fn aging_entries_refresh_then_expire() {
        let mut t = NeighTable::new(4);
        t.learn(IP, MAC, PortId(1), secs(0));
        let r = t.resolve(IP, PortId(1), secs(70));
        assert_eq!(
            r,
            Resolution {
                mac: Some(MAC),
                send_request: true
            }
        );
        let r = t.resolve(IP, PortId(1), secs(400));
        assert_eq!(r.mac, None);
    }

    #[test]
    fn static_entries_win_and_a_full_table_learns_nothing_new() {
        let mut t = NeighTable::new(1);
        t.add_static(IP, MAC, PortId(0));
        t.learn(IP, MacAddr([2, 0, 0, 0, 0, 99]), PortId(0), secs(0));
        assert_eq!(t.resolve(IP, PortId(0), secs(1000)).mac, Some(MAC));
        let other = Ipv4Addr::new(10, 0, 2, 12);
        t.learn(other, MAC, PortId(0), secs(0));
        assert_eq!(
            t.resolve(other, PortId(0), secs(0)),
            Resolution {
                mac: None,
                send_request: false
            }
        );
        t.learn(IP, MacAddr::BROADCAST, PortId(0), secs(0));
        assert_eq!(t.iter().count(), 1);
    }
}

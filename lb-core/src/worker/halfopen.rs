//! Half-open connections under a SYN flood.
//!
//! A random-source SYN flood creates one SYN_RECV entry, and for FullNAT one local
//! port, per SYN; left at the 60 s SYN_RECV timeout it takes every port within
//! seconds and locks legitimate clients out long after it ends. Two defences keep
//! the ports and the table for clients that complete their handshake:
//!
//! * under pressure (less than an eighth of the worker's local ports free, or the
//!   table seven-eighths full) a half-open entry gets [`PRESSURE_TIMEOUT`] instead
//!   of its state's timeout;
//! * when a new connection finds no port or no slot, the oldest half-open entry
//!   gives its own up. Established connections are never evicted.
//!
//! Every half-open entry the director drops (evicted or expired) sends the real
//! server a reset with the sequence it expects (NAT and FullNAT), so the server
//! frees its half of the handshake before the port is used toward it again.

use std::time::Duration;

use super::{CloseReason, Worker};

/// SYN_RECV lifetime under pressure: a handshake completes within a round trip,
/// and a client whose SYN-ACK was lost retransmits its SYN (refreshing the entry)
/// after one second.
pub const PRESSURE_TIMEOUT: Duration = Duration::from_secs(2);

impl Worker {
    /// Whether local ports or connection slots are running out.
    fn under_pressure(&self) -> bool {
        let table = self.conns.len() >= self.conns.capacity() / 8 * 7;
        let ports = self.local_ports.available() < self.local_ports.capacity() / 8;
        table || ports
    }

    /// The timeout of a half-open connection whose state would give it `timeout`.
    pub(super) fn half_open_timeout(&self, timeout: Duration) -> Duration {
        if timeout > PRESSURE_TIMEOUT && self.under_pressure() {
            self.counters.defence.halfopen_short_timeout.inc();
            PRESSURE_TIMEOUT
        } else {
            timeout
        }
    }

    /// Removes the oldest half-open connection (resetting the real server's half);
    /// false when there is none.
    pub(super) fn evict_oldest_half_open(&mut self) -> bool {
        let Some(idx) = self.conns.oldest_half_open() else {
            return false;
        };
        self.remove_conn(idx, CloseReason::Evicted);
        self.counters.defence.halfopen_evicted.inc();
        true
    }
}

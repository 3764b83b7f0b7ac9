//! Persistence templates (`ipvsadm -p [timeout] -M netmask`), shared by all
//! workers so that a client's connections reach the same real server whichever
//! worker RSS hands them to.
//!
//! A template is `<protocol, client address & mask, VIP, port> → real server,
//! expiry`. The table is a fixed array of slots of two atomic words, lock-free:
//!
//! * word 0: masked IPv4 client address (32 bits) | virtual port (16) | tag (16)
//! * word 1: tag (16) | real-server slot id (20) | expiry in seconds (28)
//!
//! The tag (16 bits of the key's hash, never 0) appears in both words: a reader
//! accepts a slot only when both tags match the key's, so a slot torn by two
//! workers writing different templates at once reads as empty, never as a wrong
//! mapping. A template found for a real server that is no longer in the service
//! (or quiescent, with `expire_quiescent_template`) is ignored and replaced, as
//! IPVS invalidates it. Templates are refreshed each time they govern a new
//! connection; they age out with their timeout.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::ids::RealServerId;
use crate::time::Instant;

/// Slots in the template table (16 bytes each: 4 MiB).
pub const TEMPLATE_SLOTS: usize = 1 << 18;
const SLOT_ID_BITS: u32 = 20;
const EXPIRY_BITS: u32 = 28;

/// What identifies a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    /// IP protocol.
    pub proto: u8,
    /// Client address with the persistence mask applied.
    pub client: Ipv4Addr,
    /// Virtual address.
    pub vip: Ipv4Addr,
    /// Virtual port.
    pub vport: u16,
}

impl TemplateKey {
    /// The key for a client of `vip:vport`, masked to `prefix` bits.
    pub fn new(proto: u8, client: Ipv4Addr, prefix: u8, vip: Ipv4Addr, vport: u16) -> Self {
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix.min(32)))
        };
        TemplateKey {
            proto,
            client: Ipv4Addr::from(u32::from(client) & mask),
            vip,
            vport,
        }
    }
}

/// A template as listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedTemplate {
    /// Masked client address.
    pub client: Ipv4Addr,
    /// Virtual port.
    pub vport: u16,
    /// The real server's slot.
    pub real_server: RealServerId,
    /// Time left.
    pub remaining: Duration,
}

/// The shared template table.
#[derive(Debug)]
pub struct Templates {
    slots: Box<[[AtomicU64; 2]]>,
    seed: u64,
}

fn seconds(now: Instant) -> u64 {
    now.as_nanos() / 1_000_000_000
}

const EXPIRY_MASK: u64 = (1 << EXPIRY_BITS) - 1;

/// Time left before the expiry stored in `second`, if any; the 28-bit seconds
/// wrap (about 8.5 years) is handled by taking differences modulo 2^28.
fn remaining(second: u64, now: Instant) -> Option<Duration> {
    let left = (second & EXPIRY_MASK).wrapping_sub(seconds(now)) & EXPIRY_MASK;
    (left > 0 && left < 1 << (EXPIRY_BITS - 1)).then(|| Duration::from_secs(left))
}

fn slot_id(second: u64) -> RealServerId {
    RealServerId(((second >> EXPIRY_BITS) & ((1 << SLOT_ID_BITS) - 1)) as u32)
}

impl Templates {
    /// An empty table; `seed` keys the hash.
    pub fn new(seed: u64) -> Self {
        Templates {
            slots: (0..TEMPLATE_SLOTS)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            seed,
        }
    }

    fn locate(&self, key: &TemplateKey) -> (usize, u64) {
        let a = (u64::from(u32::from(key.client)) << 32) | u64::from(u32::from(key.vip));
        let b = (u64::from(key.vport) << 8) | u64::from(key.proto);
        let full = u128::from(a ^ self.seed)
            * u128::from(b ^ 0x9e37_79b9_7f4a_7c15 ^ self.seed.rotate_left(29));
        let h = (full as u64) ^ ((full >> 64) as u64);
        let tag = ((h >> 48) as u16).max(1);
        (h as usize & (TEMPLATE_SLOTS - 1), u64::from(tag))
    }

    /// The real server of `key`'s live template.
    pub fn lookup(&self, key: &TemplateKey, now: Instant) -> Option<RealServerId> {
        let (slot, tag) = self.locate(key);
        let [w0, w1] = &self.slots[slot];
        let (first, second) = (w0.load(Ordering::Acquire), w1.load(Ordering::Acquire));
        let expected_first =
            (u64::from(u32::from(key.client)) << 32) | (u64::from(key.vport) << 16) | tag;
        if first != expected_first || second >> 48 != tag {
            return None;
        }
        remaining(second, now)?;
        Some(slot_id(second))
    }

    /// Creates or refreshes `key`'s template: `real_server` until `now + timeout`.
    pub fn store(
        &self,
        key: &TemplateKey,
        real_server: RealServerId,
        now: Instant,
        timeout: Duration,
    ) {
        let (slot, tag) = self.locate(key);
        let expiry = (seconds(now) + timeout.as_secs().max(1)) & EXPIRY_MASK;
        let id = u64::from(real_server.0) & ((1 << SLOT_ID_BITS) - 1);
        let first = (u64::from(u32::from(key.client)) << 32) | (u64::from(key.vport) << 16) | tag;
        let second = (tag << 48) | (id << EXPIRY_BITS) | expiry;
        let [w0, w1] = &self.slots[slot];
        w0.store(first, Ordering::Release);
        w1.store(second, Ordering::Release);
    }

    /// Live templates of the virtual port `vport` (for listings; scans the table).
    pub fn list(&self, vport: u16, now: Instant) -> Vec<ListedTemplate> {
        self.slots
            .iter()
            .filter_map(|[w0, w1]| {
                let (first, second) = (w0.load(Ordering::Acquire), w1.load(Ordering::Acquire));
                if first == 0
                    || (first & 0xffff) != second >> 48
                    || ((first >> 16) & 0xffff) as u16 != vport
                {
                    return None;
                }
                remaining(second, now).map(|left| ListedTemplate {
                    client: Ipv4Addr::from((first >> 32) as u32),
                    vport,
                    real_server: slot_id(second),
                    remaining: left,
                })
            })
            .collect()
    }
}

/// The IPv4 address of `addr`, if it is one.
pub fn v4(addr: IpAddr) -> Option<Ipv4Addr> {
    match addr {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(client: [u8; 4], prefix: u8) -> TemplateKey {
        TemplateKey::new(
            6,
            Ipv4Addr::from(client),
            prefix,
            Ipv4Addr::new(10, 0, 1, 100),
            80,
        )
    }

    fn secs(s: u64) -> Instant {
        Instant(s * 1_000_000_000)
    }

    #[test]
    fn templates_map_masked_clients_until_they_expire() {
        let t = Templates::new(3);
        assert_eq!(t.lookup(&key([10, 0, 1, 2], 24), secs(0)), None);
        t.store(
            &key([10, 0, 1, 2], 24),
            RealServerId(7),
            secs(100),
            Duration::from_secs(300),
        );
        // Same /24: same template.
        assert_eq!(
            t.lookup(&key([10, 0, 1, 99], 24), secs(399)),
            Some(RealServerId(7))
        );
        assert_eq!(t.lookup(&key([10, 0, 2, 2], 24), secs(101)), None);
        assert_eq!(t.lookup(&key([10, 0, 1, 2], 24), secs(401)), None);
        let listed = t.list(80, secs(200));
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].client, Ipv4Addr::new(10, 0, 1, 0));
        assert_eq!(listed[0].remaining, Duration::from_secs(200));
        assert!(t.list(443, secs(200)).is_empty());
    }

    #[test]
    fn refresh_extends_and_other_ports_are_separate() {
        let t = Templates::new(3);
        let k = key([192, 0, 2, 1], 32);
        t.store(&k, RealServerId(1), secs(0), Duration::from_secs(10));
        t.store(&k, RealServerId(1), secs(8), Duration::from_secs(10));
        assert_eq!(t.lookup(&k, secs(17)), Some(RealServerId(1)));
        let mut other = k;
        other.vport = 443;
        assert_eq!(t.lookup(&other, secs(1)), None);
    }

    #[test]
    fn a_torn_slot_reads_as_empty() {
        let t = Templates::new(3);
        let k = key([192, 0, 2, 1], 32);
        t.store(&k, RealServerId(1), secs(0), Duration::from_secs(10));
        let (slot, _) = t.locate(&k);
        // Another writer's second word over ours.
        t.slots[slot][1].store(0xdead_0000_0000_0005, Ordering::Relaxed);
        assert_eq!(t.lookup(&k, secs(1)), None);
    }
}

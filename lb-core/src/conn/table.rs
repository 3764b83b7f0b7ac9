//! The per-worker connection table.
//!
//! Records live in a slab preallocated to the configured capacity; a bucketed
//! cuckoo index (`index.rs`, one cache line per bucket) holds each record under
//! two keys, the client-side tuple (client → VIP) and the server-side tuple (real
//! server → local address), so one lookup finds the connection from either
//! direction. A hit reads one bucket line and the record. Nothing allocates after
//! construction: the slab and the index are sized for the capacity up front.

use std::hint::black_box;
use std::net::IpAddr;

use super::fifo::SlotFifo;
use super::index::BucketIndex;
use super::state::TcpState;
use super::timer::TimerWheel;
use super::window::TcpWindow;
use crate::flow::FlowKey;
use crate::ids::{RealServerId, ServiceId};
use crate::service::ForwardMode;
use crate::time::Instant;

/// Which key of a connection a lookup matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The client-side tuple: a packet from the client.
    Client,
    /// The server-side tuple: a packet from the real server.
    Server,
}

/// One tracked connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    /// IP protocol.
    pub proto: u8,
    /// How packets reach the real server.
    pub forward: ForwardMode,
    /// TCP state (UDP connections use `Established`).
    pub state: TcpState,
    /// Whether a packet from the server side has been seen.
    pub output_seen: bool,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Virtual address and port.
    pub virt: (IpAddr, u16),
    /// Address and port the real server sees as the peer: the local address for
    /// FullNAT, the client for the other modes.
    pub local: (IpAddr, u16),
    /// Real server address and port.
    pub dest: (IpAddr, u16),
    /// The service, with its slot serial.
    pub service: (ServiceId, u32),
    /// The real server, with its slot serial.
    pub real_server: (RealServerId, u32),
    /// When the connection expires unless refreshed.
    pub expires: Instant,
    /// State of the forwarding rewrites (client-address carriers).
    pub xmit: XmitState,
    /// The ports each direction of the connection arrives on.
    pub sides: SidePorts,
    /// Both sides' TCP sequence windows (NAT and FullNAT).
    pub window: TcpWindow,
}

/// The port each direction of a connection arrives on, so that a packet matching
/// a tuple but arriving from the other network is not taken into the connection.
/// Two bytes: port indexes, [`SidePorts::UNKNOWN`] until known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SidePorts {
    /// The port the client's packets arrive on (that of its first packet).
    pub client: u8,
    /// The port the real server's replies arrive on: the egress of the route to
    /// it, or that of its first reply when there was no route.
    pub server: u8,
}

impl SidePorts {
    /// Not known yet: the first packet of that direction sets it.
    pub const UNKNOWN: u8 = u8::MAX;

    /// The expected port of packets of `side`, if known.
    pub fn expected(&self, side: Side) -> Option<u8> {
        let port = match side {
            Side::Client => self.client,
            Side::Server => self.server,
        };
        (port != Self::UNKNOWN).then_some(port)
    }

    /// Whether a packet of `side` arriving on `port` belongs here; learns the
    /// port on the first packet of a direction.
    pub fn admit(&mut self, side: Side, port: u8) -> bool {
        let slot = match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        };
        if *slot == Self::UNKNOWN {
            *slot = port;
        }
        *slot == port
    }
}

impl Default for SidePorts {
    fn default() -> Self {
        SidePorts {
            client: Self::UNKNOWN,
            server: Self::UNKNOWN,
        }
    }
}

/// Per-connection state of the forwarding rewrites: which client-address carrier
/// a FullNAT TCP connection uses and how far it got. Eight bytes with alignment:
/// the record grew from 112 to 120 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XmitState {
    /// `crate::xmit::carrier` flag bits.
    pub flags: u8,
    /// Bytes inserted into the client's stream (the PROXY header's length).
    pub delta: u8,
    /// The client's first stream sequence number (its ISN + 1).
    pub seq: u32,
}

impl Conn {
    /// The tuple of packets from the client.
    pub fn client_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.client.0,
            sport: self.client.1,
            dst: self.virt.0,
            dport: self.virt.1,
        }
    }

    /// The tuple of packets from the real server.
    pub fn server_key(&self) -> FlowKey {
        FlowKey {
            proto: self.proto,
            src: self.dest.0,
            sport: self.dest.1,
            dst: self.local.0,
            dport: self.local.1,
        }
    }

    /// Whether replies from the server pass through the director (so the server-side
    /// key must be indexed).
    pub fn replies_through_director(&self) -> bool {
        matches!(self.forward, ForwardMode::Nat | ForwardMode::FullNat)
    }
}

/// Why a connection could not be inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The table holds its capacity.
    Full,
    /// A connection with one of the same keys exists.
    Exists,
}

/// A range of memory a table keeps for its lifetime, for the OS layer to back
/// with huge pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First byte.
    pub start: usize,
    /// Length in bytes.
    pub len: usize,
    /// Whether the pages were written at construction (advice given now only
    /// applies to pages faulted in later).
    pub populated: bool,
}

/// Lookups of a burst handled together: all hashed, then every primary bucket
/// read, then every first candidate record, then the keys compared.
pub const LOOKUP_BURST: usize = 32;

/// A connection table owned by one worker.
#[derive(Debug)]
pub struct ConnTable {
    slab: Vec<Conn>,
    free: Vec<u32>,
    index: BucketIndex,
    hasher: KeyHasher,
    wheel: TimerWheel,
    /// TCP connections that have not completed their handshake, oldest first.
    half_open: SlotFifo,
    capacity: usize,
    /// Inserts and removals so far: a lookup made before is still right when
    /// this has not moved.
    changes: u64,
    /// Starts loading the cache line at an address without waiting for it (a
    /// prefetch instruction, which needs `unsafe` and so comes from the data
    /// plane); without it, burst lookups read ahead with plain loads.
    prefetch: Option<fn(usize)>,
}

/// Timer wheel geometry: 10 ms ticks, 4096 slots (a 41 s horizon; longer timeouts
/// are re-linked once per lap).
const TICK_NS: u64 = 10_000_000;
const WHEEL_SLOTS: usize = 4096;

impl ConnTable {
    /// A table for `capacity` connections. `seed` keys the hash so that remote
    /// peers cannot aim tuples at one bucket.
    pub fn new(capacity: usize, seed: u64, now: Instant) -> Self {
        let capacity = capacity.max(1);
        let mut s = seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut next_seed = || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        ConnTable {
            slab: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            index: BucketIndex::new(capacity * 2),
            hasher: KeyHasher {
                seeds: [next_seed(), next_seed(), next_seed()],
                #[cfg(test)]
                replaced: None,
            },
            wheel: TimerWheel::new(capacity, WHEEL_SLOTS, TICK_NS, now),
            half_open: SlotFifo::new(capacity),
            capacity,
            changes: 0,
            prefetch: None,
        }
    }

    /// A table whose keys all hash with `hash`, to crowd them into few buckets
    /// and signatures.
    #[cfg(test)]
    pub(super) fn with_hash(capacity: usize, now: Instant, hash: fn(&FlowKey) -> u64) -> Self {
        let mut table = ConnTable::new(capacity, 0, now);
        table.hasher.replaced = Some(hash);
        table
    }

    /// Connections the table can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Connections in the table.
    pub fn len(&self) -> usize {
        self.slab.len() - self.free.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The connection in slot `idx`.
    pub fn get(&self, idx: u32) -> &Conn {
        &self.slab[idx as usize]
    }

    /// The connection in slot `idx`, writable. Keys must not be changed.
    pub fn get_mut(&mut self, idx: u32) -> &mut Conn {
        &mut self.slab[idx as usize]
    }

    /// Moves the connection in slot `idx` to `state`, keeping the half-open
    /// list in step.
    #[inline]
    pub fn set_state(&mut self, idx: u32, state: TcpState) {
        self.slab[idx as usize].state = state;
        if !state.is_half_open() {
            self.half_open.remove(idx);
        }
    }

    /// The TCP connection that has waited longest for its handshake to complete.
    pub fn oldest_half_open(&self) -> Option<u32> {
        self.half_open.oldest()
    }

    /// TCP connections whose handshake has not completed.
    pub fn half_open_len(&self) -> usize {
        self.half_open.len()
    }

    /// Sets when the connection in slot `idx` expires. Traffic usually pushes the
    /// deadline later, which costs nothing here: the wheel entry fires at the old
    /// deadline and follows the record then. A deadline moved *earlier* (a state
    /// with a shorter timeout, such as ESTABLISHED → TIME_WAIT) re-arms the wheel
    /// entry at once, so the entry never outlives its new timeout.
    #[inline]
    pub fn set_expires(&mut self, idx: u32, expires: Instant) {
        let conn = &mut self.slab[idx as usize];
        if expires < conn.expires {
            self.wheel.arm(idx, expires);
        }
        conn.expires = expires;
    }

    /// Finds the connection a packet with tuple `key` belongs to.
    #[inline]
    pub fn lookup(&self, key: &FlowKey) -> Option<(u32, Side)> {
        let hash = self.hasher.hash(key);
        let slab = &self.slab;
        self.index
            .find(hash, |e| entry_key(slab, e) == *key)
            .map(entry_side)
    }

    /// Finds the connections of a burst of tuples: `out[i]` is what
    /// [`ConnTable::lookup`] returns for `keys[i]` (up to the shorter length).
    /// The memory accesses of the keys overlap: every key is hashed and its
    /// primary bucket read before any record is, and every first candidate
    /// record is read before any key comparison waits on one.
    pub fn lookup_burst(&self, keys: &[FlowKey], out: &mut [Option<(u32, Side)>]) {
        for (keys, out) in keys.chunks(LOOKUP_BURST).zip(out.chunks_mut(LOOKUP_BURST)) {
            self.lookup_chunk(keys, out);
        }
    }

    #[inline]
    fn lookup_chunk(&self, keys: &[FlowKey], out: &mut [Option<(u32, Side)>]) {
        let index = &self.index;
        let mut hashes = [0u64; LOOKUP_BURST];
        let mut probes = [index.probe(0); LOOKUP_BURST];
        for ((key, hash), probe) in keys.iter().zip(&mut hashes).zip(&mut probes) {
            *hash = self.hasher.hash(key);
            *probe = index.probe(*hash);
        }
        if let Some(prefetch) = self.prefetch {
            for probe in &probes[..keys.len()] {
                prefetch(index.primary_addr(*probe));
            }
        }
        let mut candidates = [Default::default(); LOOKUP_BURST];
        for (probe, found) in probes.iter().zip(&mut candidates).take(keys.len()) {
            *found = index.candidates(*probe);
        }
        // Each first candidate record is read ahead: prefetched, or with loads
        // that are independent, so the core overlaps their misses. The two
        // fields are at either end of the key fields, usually in two lines.
        for (probe, found) in probes.iter().zip(&candidates).take(keys.len()) {
            if let Some(entry) = index.first_candidate(*probe, *found) {
                let conn = &self.slab[(entry >> 1) as usize];
                match self.prefetch {
                    Some(prefetch) => {
                        prefetch(std::ptr::from_ref(&conn.proto) as usize);
                        prefetch(std::ptr::from_ref(&conn.client.1) as usize);
                    }
                    None => {
                        black_box((conn.client.1, conn.proto));
                    }
                }
            }
        }
        for (i, (key, slot)) in keys.iter().zip(out).enumerate() {
            *slot = index
                .resolve(hashes[i], probes[i], candidates[i], |e| {
                    entry_key(&self.slab, e) == *key
                })
                .map(entry_side);
        }
    }

    /// Inserts `conn`, indexed under its client key and (for NAT and FullNAT) its
    /// server key, and arms its expiry.
    pub fn insert(&mut self, conn: Conn) -> Result<u32, InsertError> {
        let ckey = conn.client_key();
        let skey = conn.replies_through_director().then(|| conn.server_key());
        if self.lookup(&ckey).is_some() || skey.is_some_and(|k| self.lookup(&k).is_some()) {
            return Err(InsertError::Exists);
        }
        let expires = conn.expires;
        let idx = if let Some(idx) = self.free.pop() {
            self.slab[idx as usize] = conn;
            idx
        } else if self.slab.len() < self.capacity {
            self.slab.push(conn);
            (self.slab.len() - 1) as u32
        } else {
            return Err(InsertError::Full);
        };
        let chash = self.hasher.hash(&ckey);
        let indexed = self.index.insert(chash, idx << 1)
            && skey.is_none_or(|k| {
                let indexed = self.index.insert(self.hasher.hash(&k), (idx << 1) | 1);
                if !indexed {
                    self.index.remove(chash, idx << 1);
                }
                indexed
            });
        if !indexed {
            // The index has no room for these keys (all their candidate
            // buckets and the stash are full): as full as the slab would be.
            self.free.push(idx);
            return Err(InsertError::Full);
        }
        self.wheel.arm(idx, expires);
        let conn = &self.slab[idx as usize];
        if conn.proto == crate::wire::ipv4::PROTO_TCP && conn.state.is_half_open() {
            self.half_open.push(idx);
        }
        self.changes += 1;
        Ok(idx)
    }

    /// Removes the connection in slot `idx` and returns it.
    pub fn remove(&mut self, idx: u32) -> Conn {
        self.wheel.cancel(idx);
        self.half_open.remove(idx);
        let conn = self.slab[idx as usize].clone();
        Self::unindex(&mut self.index, &self.hasher, &self.slab, idx);
        self.free.push(idx);
        self.changes += 1;
        conn
    }

    /// Makes burst lookups prefetch with `prefetch`, which starts loading the
    /// cache line at an address (a hint: it must accept any address).
    pub fn set_prefetch(&mut self, prefetch: fn(usize)) {
        self.prefetch = Some(prefetch);
    }

    /// How many inserts and removals the table has seen (expiries included).
    #[inline]
    pub fn changes(&self) -> u64 {
        self.changes
    }

    fn unindex(index: &mut BucketIndex, hasher: &KeyHasher, slab: &[Conn], idx: u32) {
        let conn = &slab[idx as usize];
        index.remove(hasher.hash(&conn.client_key()), idx << 1);
        if conn.replies_through_director() {
            index.remove(hasher.hash(&conn.server_key()), (idx << 1) | 1);
        }
    }

    /// The memory the table keeps for its lifetime: the bucket array (starting
    /// on a 2 MiB boundary when it spans one) and the record slab.
    pub fn memory_regions(&self) -> impl Iterator<Item = MemoryRegion> {
        let slab = MemoryRegion {
            start: self.slab.as_ptr() as usize,
            len: self.slab.capacity() * size_of::<Conn>(),
            populated: false,
        };
        [self.index.region(), slab].into_iter()
    }

    /// Expires connections whose deadline has passed, handling at most `budget`
    /// timer entries; `on_expire` sees each removed connection (to return its local
    /// port and fix counters). Returns how many timer entries were handled.
    pub fn expire(
        &mut self,
        now: Instant,
        budget: usize,
        mut on_expire: impl FnMut(&Conn),
    ) -> usize {
        let ConnTable {
            slab,
            free,
            index,
            hasher,
            wheel,
            half_open,
            changes,
            ..
        } = self;
        wheel.advance(now, budget, |idx| {
            let conn = &slab[idx as usize];
            if conn.expires > now {
                // Refreshed by traffic since it was armed: follow the new deadline.
                return Some(conn.expires);
            }
            on_expire(conn);
            half_open.remove(idx);
            Self::unindex(index, hasher, slab, idx);
            free.push(idx);
            *changes += 1;
            None
        })
    }

    /// Every live connection (a live connection is one whose expiry is armed).
    pub fn iter(&self) -> impl Iterator<Item = &Conn> + '_ {
        self.slab
            .iter()
            .enumerate()
            .filter(|(idx, _)| self.wheel.is_armed(*idx as u32))
            .map(|(_, c)| c)
    }

    /// Calls `f` on each live connection in slots `from..from + slots`: a slice
    /// of a walk over the table that never holds the worker up for long. Returns
    /// the slot to continue from, `None` once the walk passed the last slot.
    pub fn walk(&self, from: u32, slots: usize, mut f: impl FnMut(&Conn)) -> Option<u32> {
        let end = (from as usize).saturating_add(slots).min(self.slab.len());
        for idx in from as usize..end {
            if self.wheel.is_armed(idx as u32) {
                f(&self.slab[idx]);
            }
        }
        (end < self.slab.len()).then_some(end as u32)
    }
}

#[inline]
fn entry_side(entry: u32) -> (u32, Side) {
    let side = if entry & 1 == 0 {
        Side::Client
    } else {
        Side::Server
    };
    (entry >> 1, side)
}

#[inline]
fn entry_key(slab: &[Conn], entry: u32) -> FlowKey {
    let conn = &slab[(entry >> 1) as usize];
    if entry & 1 == 0 {
        conn.client_key()
    } else {
        conn.server_key()
    }
}

#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

#[inline]
fn addr_bits(addr: IpAddr) -> u64 {
    match addr {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (v as u64) ^ ((v >> 64) as u64).rotate_left(17)
        }
    }
}

/// The table's hash of flow tuples; tests may replace it by a degenerate one to
/// crowd keys into few buckets and signatures.
#[derive(Debug)]
struct KeyHasher {
    seeds: [u64; 3],
    #[cfg(test)]
    replaced: Option<fn(&FlowKey) -> u64>,
}

impl KeyHasher {
    #[inline]
    fn hash(&self, key: &FlowKey) -> u64 {
        #[cfg(test)]
        if let Some(hash) = self.replaced {
            return hash(key);
        }
        hash_key(&self.seeds, key)
    }
}

/// A keyed hash of a flow tuple: two rounds of folded multiplication (as in
/// foldhash), fast enough for the per-packet lookup and seeded per worker.
#[inline]
fn hash_key(seeds: &[u64; 3], key: &FlowKey) -> u64 {
    let addrs = addr_bits(key.src).rotate_left(32) ^ addr_bits(key.dst);
    let rest = (u64::from(key.sport) << 32) | (u64::from(key.dport) << 16) | u64::from(key.proto);
    let h = folded_multiply(addrs ^ seeds[0], rest ^ seeds[1]);
    folded_multiply(h ^ seeds[2], 0x2d35_8dcc_aa6c_78a5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A half-open FullNAT TCP connection (the model test's record, as TCP).
    fn conn(cport: u16, lport: u16, expires: Instant) -> Conn {
        Conn {
            proto: 6,
            state: TcpState::SynRecv,
            ..super::super::table_model::conn(cport, lport, true, expires)
        }
    }

    #[test]
    fn half_open_connections_are_listed_oldest_first_until_they_open() {
        let mut t = ConnTable::new(8, 1, Instant(0));
        let far = Instant(u64::MAX / 2);
        let a = t.insert(conn(1, 1, far)).unwrap();
        let b = t.insert(conn(2, 2, far)).unwrap();
        let mut udp = conn(3, 3, far);
        udp.proto = 17;
        t.insert(udp).unwrap();
        assert_eq!((t.oldest_half_open(), t.half_open_len()), (Some(a), 2));
        t.set_state(a, TcpState::Established);
        assert_eq!(t.oldest_half_open(), Some(b));
        t.remove(b);
        assert_eq!(t.oldest_half_open(), None);
        let c = t.insert(conn(4, 4, Instant(1))).unwrap();
        assert_eq!(t.oldest_half_open(), Some(c));
        t.expire(Instant(1_000_000_000), usize::MAX, |_| {});
        assert_eq!(t.oldest_half_open(), None);
    }

    #[test]
    fn finds_a_connection_from_both_sides() {
        let mut t = ConnTable::new(8, 1, Instant(0));
        let c = conn(40000, 1025, Instant(1_000_000_000));
        let idx = t.insert(c.clone()).unwrap();
        assert_eq!(t.lookup(&c.client_key()), Some((idx, Side::Client)));
        assert_eq!(t.lookup(&c.server_key()), Some((idx, Side::Server)));
        assert_eq!(t.lookup(&c.client_key().reversed()), None);
        assert_eq!(t.insert(c.clone()), Err(InsertError::Exists));
        assert_eq!(t.remove(idx), c);
        assert_eq!(t.lookup(&c.client_key()), None);
        assert_eq!(t.lookup(&c.server_key()), None);
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_table_refuses_new_connections_and_keeps_old_ones() {
        let mut t = ConnTable::new(2, 1, Instant(0));
        let a = conn(1, 1, Instant(u64::MAX / 2));
        let b = conn(2, 2, Instant(u64::MAX / 2));
        t.insert(a.clone()).unwrap();
        t.insert(b.clone()).unwrap();
        assert_eq!(t.insert(conn(3, 3, Instant(0))), Err(InsertError::Full));
        assert!(t.lookup(&a.client_key()).is_some());
        assert!(t.lookup(&b.server_key()).is_some());
    }

    #[test]
    fn expiry_follows_refreshed_deadlines() {
        let start = Instant(0);
        let mut t = ConnTable::new(4, 7, start);
        let a = t
            .insert(conn(1, 1, start + Duration::from_secs(1)))
            .unwrap();
        let b = t
            .insert(conn(2, 2, start + Duration::from_secs(1)))
            .unwrap();
        t.get_mut(b).expires = start + Duration::from_secs(5);
        let mut gone = Vec::new();
        t.expire(start + Duration::from_secs(2), usize::MAX, |c| {
            gone.push(c.client.1)
        });
        assert_eq!(gone, [1]);
        assert!(t.lookup(&t.get(b).client_key()).is_some());
        t.expire(start + Duration::from_secs(6), usize::MAX, |c| {
            gone.push(c.client.1)
        });
        assert_eq!(gone, [1, 2]);
        assert!(t.is_empty());
        // Slots are reused.
        let c = t
            .insert(conn(3, 3, start + Duration::from_secs(9)))
            .unwrap();
        assert!(c == a || c == b);
    }

    #[test]
    fn a_shortened_deadline_takes_effect_at_once() {
        let start = Instant(0);
        let mut t = ConnTable::new(4, 7, start);
        let a = t
            .insert(conn(1, 1, start + Duration::from_secs(1)))
            .unwrap();
        // Traffic: a long timeout (lazy), then a short one (re-armed).
        t.set_expires(a, start + Duration::from_secs(900));
        t.expire(start + Duration::from_secs(2), usize::MAX, |_| {});
        assert!(!t.is_empty(), "refreshed to 900 s");
        t.set_expires(a, start + Duration::from_secs(6));
        let mut gone = false;
        t.expire(start + Duration::from_secs(7), usize::MAX, |_| gone = true);
        assert!(gone, "expired at the shortened deadline, not at 900 s");
    }

    #[test]
    fn a_walk_in_slices_sees_every_live_connection_once() {
        let mut t = ConnTable::new(64, 3, Instant(0));
        let far = Instant(u64::MAX / 2);
        let idx: Vec<u32> = (0..40)
            .map(|i| t.insert(conn(i, i, far)).unwrap())
            .collect();
        for &i in idx.iter().step_by(3) {
            t.remove(i);
        }
        let (mut seen, mut cursor, mut slices) = (Vec::new(), Some(0), 0);
        while let Some(from) = cursor {
            cursor = t.walk(from, 7, |c| seen.push(c.client.1));
            slices += 1;
        }
        seen.sort_unstable();
        let live: Vec<u16> = (0..40).filter(|i| i % 3 != 0).collect();
        assert_eq!(seen, live);
        assert_eq!(slices, 40usize.div_ceil(7));
        assert_eq!(t.iter().count(), live.len());
    }

    #[test]
    fn many_connections_round_trip() {
        let mut t = ConnTable::new(10_000, 42, Instant(0));
        for i in 0..10_000u16 {
            t.insert(conn(i, i, Instant(u64::MAX / 2))).unwrap();
        }
        for i in 0..10_000u16 {
            let c = conn(i, i, Instant(0));
            let (idx, side) = t.lookup(&c.server_key()).unwrap();
            assert_eq!(side, Side::Server);
            assert_eq!(t.get(idx).client.1, i);
        }
        assert_eq!(t.iter().count(), 10_000);
    }
}

#[cfg(test)]
mod size {
    /// The record: endpoints (80 bytes while addresses are `IpAddr`), ids,
    /// deadline, carrier state, sides and the TCP windows (32 bytes).
    #[test]
    fn the_record_stays_small() {
        let size = size_of::<super::Conn>();
        assert!(size <= 152, "Conn is {size} bytes");
    }
}

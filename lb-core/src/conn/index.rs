//! The index of the connection table: a cuckoo hash of buckets that are one
//! cache line each, as DPDK's `rte_hash` lays them out.
//!
//! A bucket holds eight entries (a connection's slab slot and side, `idx << 1 |
//! side`) with a 16-bit signature each, so a lookup reads one line, compares
//! eight signatures at once and reads a record only when a signature matches.
//! Every key has two candidate buckets: its primary one (the low bits of its
//! hash) and an alternative one derived from the primary bucket and the
//! signature alone, so that an entry can be moved between its two buckets
//! without reading its record (cuckoo displacement). What finds no place within
//! a bounded displacement search goes to a small stash, which is scanned only
//! for keys whose primary bucket counts stashed entries.

use super::MemoryRegion;

/// Entries per bucket.
const SLOTS: usize = 8;

/// The bucket array starts on a 2 MiB boundary so that huge pages can back all
/// of it; smaller arrays stay where the allocator puts them.
const HUGE_PAGE: usize = 2 << 20;

/// Highest share of slots in use when every connection holds two keys; the
/// power-of-two rounding usually leaves the table much emptier.
const MAX_LOAD: f64 = 0.9;

/// Buckets a displacement search may visit before the key goes to the stash.
const SEARCH_NODES: usize = 256;

/// The smallest stash; larger tables get one entry per 1024 keys.
const STASH_MIN: usize = 64;

/// One cache line: eight signatures, eight entries, which slots are in use and
/// how many stashed keys have this as their primary bucket.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    sigs: [u16; SLOTS],
    entries: [u32; SLOTS],
    stashed: u16,
    used: u8,
}

const _: () = assert!(size_of::<Bucket>() == 64);

impl Bucket {
    const EMPTY: Bucket = Bucket {
        sigs: [0; SLOTS],
        entries: [0; SLOTS],
        stashed: 0,
        used: 0,
    };

    /// Slots in use whose signature is `sig`, one bit each.
    #[inline]
    fn matches(&self, sig: u16) -> u32 {
        let mut mask = 0;
        for (i, &s) in self.sigs.iter().enumerate() {
            mask |= u32::from(s == sig) << i;
        }
        mask & u32::from(self.used)
    }

    fn free_slot(&self) -> Option<usize> {
        let free = !self.used;
        (free != 0).then(|| free.trailing_zeros() as usize)
    }

    fn put(&mut self, slot: usize, sig: u16, entry: u32) {
        self.sigs[slot] = sig;
        self.entries[slot] = entry;
        self.used |= 1 << slot;
    }

    fn slot_of(&self, entry: u32) -> Option<usize> {
        (0..SLOTS).find(|&s| self.used & (1 << s) != 0 && self.entries[s] == entry)
    }
}

/// Where a hash leads: its two candidate buckets and its signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Probe {
    primary: usize,
    alternative: usize,
    sig: u16,
}

/// What a probe's primary bucket holds for it: the slots whose signature
/// matches, and whether stashed keys have it as their primary bucket.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Candidates {
    primary: u32,
    stash: bool,
}

/// A step of a displacement search: `bucket` is reached by moving the entry in
/// `slot` of the parent node's bucket there.
#[derive(Clone, Copy, Debug, Default)]
struct Node {
    bucket: u32,
    parent: u16,
    slot: u8,
}

const ROOT: u16 = u16::MAX;

/// The bucketed cuckoo index.
#[derive(Debug)]
pub(super) struct BucketIndex {
    /// Allocated with room to start the used part on a huge-page boundary.
    storage: Vec<Bucket>,
    /// Offset of bucket 0 in `storage`.
    first: usize,
    mask: usize,
    /// Keys that found no bucket: their full hash and entry.
    stash: Vec<(u64, u32)>,
}

impl BucketIndex {
    /// An index for up to `keys` keys.
    pub(super) fn new(keys: usize) -> Self {
        let wanted = (keys.max(1) as f64 / (SLOTS as f64 * MAX_LOAD)).ceil() as usize;
        let buckets = wanted.next_power_of_two();
        let bytes = buckets * size_of::<Bucket>();
        let pad = if bytes >= HUGE_PAGE {
            HUGE_PAGE / size_of::<Bucket>() - 1
        } else {
            0
        };
        let storage = vec![Bucket::EMPTY; buckets + pad];
        let misalign = (storage.as_ptr() as usize) % HUGE_PAGE;
        let first = if pad == 0 || misalign == 0 {
            0
        } else {
            (HUGE_PAGE - misalign) / size_of::<Bucket>()
        };
        BucketIndex {
            storage,
            first,
            mask: buckets - 1,
            stash: Vec::with_capacity(STASH_MIN.max(keys / 1024).min(usize::from(u16::MAX))),
        }
    }

    /// The bucket array (written at construction).
    pub(super) fn region(&self) -> MemoryRegion {
        let buckets = self.buckets();
        MemoryRegion {
            start: buckets.as_ptr() as usize,
            len: size_of_val(buckets),
            populated: true,
        }
    }

    #[inline]
    fn buckets(&self) -> &[Bucket] {
        &self.storage[self.first..][..=self.mask]
    }

    #[inline]
    fn bucket(&self, b: usize) -> &Bucket {
        &self.storage[self.first + b]
    }

    #[inline]
    fn bucket_mut(&mut self, b: usize) -> &mut Bucket {
        &mut self.storage[self.first + b]
    }

    /// The other candidate bucket of an entry with signature `sig` in bucket
    /// `b`: an involution, and never `b` itself unless there is one bucket.
    #[inline]
    fn other_bucket(&self, b: usize, sig: u16) -> usize {
        let spread = (u64::from(sig).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize;
        b ^ ((spread | 1) & self.mask)
    }

    /// The buckets and signature of `hash`. The signature comes from the top
    /// bits and the bucket from the low ones, so they are independent.
    #[inline]
    pub(super) fn probe(&self, hash: u64) -> Probe {
        let primary = hash as usize & self.mask;
        let sig = (hash >> 48) as u16;
        Probe {
            primary,
            alternative: self.other_bucket(primary, sig),
            sig,
        }
    }

    /// The address of the primary bucket of `probe`, to prefetch it.
    #[inline]
    pub(super) fn primary_addr(&self, probe: Probe) -> usize {
        std::ptr::from_ref(self.bucket(probe.primary)) as usize
    }

    /// Reads the primary bucket of `probe`: the first memory access of a
    /// lookup, done for a whole burst before any record is read. The
    /// alternative bucket is read only when the primary one has no match, which
    /// at the table's load is rare (inserts fill the primary bucket first).
    #[inline]
    pub(super) fn candidates(&self, probe: Probe) -> Candidates {
        let primary = self.bucket(probe.primary);
        Candidates {
            primary: primary.matches(probe.sig),
            stash: primary.stashed != 0,
        }
    }

    /// The first entry among `candidates`, to read its record ahead.
    #[inline]
    pub(super) fn first_candidate(&self, probe: Probe, candidates: Candidates) -> Option<u32> {
        (candidates.primary != 0).then(|| {
            let slot = candidates.primary.trailing_zeros() as usize;
            self.bucket(probe.primary).entries[slot]
        })
    }

    /// The entry of `hash` that `is_key` accepts, given what its primary
    /// bucket holds.
    #[inline]
    pub(super) fn resolve(
        &self,
        hash: u64,
        probe: Probe,
        candidates: Candidates,
        mut is_key: impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        if let Some(entry) = self.matching(probe.primary, candidates.primary, &mut is_key) {
            return Some(entry);
        }
        if probe.alternative != probe.primary {
            let mask = self.bucket(probe.alternative).matches(probe.sig);
            if let Some(entry) = self.matching(probe.alternative, mask, &mut is_key) {
                return Some(entry);
            }
        }
        if candidates.stash {
            return self.stashed(hash, &mut is_key);
        }
        None
    }

    /// The entry of `hash` that `is_key` accepts.
    #[inline]
    pub(super) fn find(&self, hash: u64, is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let probe = self.probe(hash);
        self.resolve(hash, probe, self.candidates(probe), is_key)
    }

    /// The entry among the slots `mask` of bucket `b` that `is_key` accepts.
    #[inline]
    fn matching(
        &self,
        b: usize,
        mut mask: u32,
        is_key: &mut impl FnMut(u32) -> bool,
    ) -> Option<u32> {
        while mask != 0 {
            let entry = self.bucket(b).entries[mask.trailing_zeros() as usize];
            if is_key(entry) {
                return Some(entry);
            }
            mask &= mask - 1;
        }
        None
    }

    fn stashed(&self, hash: u64, is_key: &mut impl FnMut(u32) -> bool) -> Option<u32> {
        self.stash
            .iter()
            .find(|&&(h, e)| h == hash && is_key(e))
            .map(|&(_, e)| e)
    }

    /// Adds `entry` under `hash`; false when neither its buckets, a
    /// displacement nor the stash have room.
    pub(super) fn insert(&mut self, hash: u64, entry: u32) -> bool {
        let probe = self.probe(hash);
        for b in [probe.primary, probe.alternative] {
            if let Some(slot) = self.bucket(b).free_slot() {
                self.bucket_mut(b).put(slot, probe.sig, entry);
                return true;
            }
        }
        if let Some((b, slot)) = self.displace(probe) {
            self.bucket_mut(b).put(slot, probe.sig, entry);
            return true;
        }
        if self.stash.len() < self.stash.capacity() {
            self.stash.push((hash, entry));
            self.bucket_mut(probe.primary).stashed += 1;
            return true;
        }
        false
    }

    /// Breadth-first search for a chain of moves, each entry to its other
    /// bucket, that ends in a free slot; performs it and returns the slot it
    /// freed in one of `probe`'s buckets.
    fn displace(&mut self, probe: Probe) -> Option<(usize, usize)> {
        let mut nodes = [Node::default(); SEARCH_NODES];
        let mut len = 0;
        for b in [probe.primary, probe.alternative] {
            if len == 0 || nodes[0].bucket as usize != b {
                nodes[len] = Node {
                    bucket: b as u32,
                    parent: ROOT,
                    slot: 0,
                };
                len += 1;
            }
        }
        let mut at = 0;
        while at < len {
            let here = nodes[at].bucket as usize;
            for slot in 0..SLOTS {
                let other = self.other_bucket(here, self.bucket(here).sigs[slot]);
                if let Some(free) = self.bucket(other).free_slot() {
                    return Some(self.shift_chain(&nodes, at, slot, other, free));
                }
                if len < SEARCH_NODES && !on_path(&nodes, at, other) {
                    nodes[len] = Node {
                        bucket: other as u32,
                        parent: at as u16,
                        slot: slot as u8,
                    };
                    len += 1;
                }
            }
            at += 1;
        }
        None
    }

    /// Moves the entry in `slot` of node `at`'s bucket to the free slot of
    /// bucket `to`, then each entry along the chain into the slot its child
    /// left, and returns the slot freed in the root bucket.
    fn shift_chain(
        &mut self,
        nodes: &[Node],
        mut at: usize,
        mut slot: usize,
        mut to: usize,
        mut free: usize,
    ) -> (usize, usize) {
        loop {
            let from = nodes[at].bucket as usize;
            let (sig, entry) = {
                let b = self.bucket(from);
                (b.sigs[slot], b.entries[slot])
            };
            self.bucket_mut(to).put(free, sig, entry);
            self.bucket_mut(from).used &= !(1 << slot);
            let node = nodes[at];
            if node.parent == ROOT {
                return (from, slot);
            }
            (to, free) = (from, slot);
            slot = usize::from(node.slot);
            at = usize::from(node.parent);
        }
    }

    /// Drops `entry`, indexed under `hash`.
    pub(super) fn remove(&mut self, hash: u64, entry: u32) {
        let probe = self.probe(hash);
        for b in [probe.primary, probe.alternative] {
            if let Some(slot) = self.bucket(b).slot_of(entry) {
                self.bucket_mut(b).used &= !(1 << slot);
                return;
            }
        }
        if let Some(at) = self.stash.iter().position(|&(_, e)| e == entry) {
            self.stash.swap_remove(at);
            self.bucket_mut(probe.primary).stashed -= 1;
        }
    }
}

/// Whether `bucket` is node `at`'s or one of its ancestors' (a chain through a
/// bucket twice could move an entry that an earlier move replaced).
fn on_path(nodes: &[Node], mut at: usize, bucket: usize) -> bool {
    loop {
        if nodes[at].bucket as usize == bucket {
            return true;
        }
        match nodes[at].parent {
            ROOT => return false,
            parent => at = usize::from(parent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn lookup(index: &BucketIndex, hash: u64, entry: u32) -> bool {
        index.find(hash, |e| e == entry).is_some()
    }

    #[test]
    fn a_bucket_is_one_cache_line() {
        assert_eq!(size_of::<Bucket>(), 64);
        assert_eq!(align_of::<Bucket>(), 64);
    }

    #[test]
    fn large_arrays_start_on_a_huge_page() {
        let index = BucketIndex::new(1 << 20);
        let region = index.region();
        assert_eq!(region.start % HUGE_PAGE, 0);
        assert!(region.len >= (1 << 20) * 64 / 8);
        assert!(region.len.is_power_of_two());
    }

    #[test]
    fn the_other_bucket_is_an_involution() {
        let index = BucketIndex::new(10_000);
        for b in [0, 1, 7, index.mask] {
            for sig in [0, 1, 0x8000, u16::MAX] {
                let other = index.other_bucket(b, sig);
                assert_ne!(other, b);
                assert!(other <= index.mask);
                assert_eq!(index.other_bucket(other, sig), b);
            }
        }
    }

    #[test]
    fn fills_to_the_sizing_load_by_displacement_without_the_stash() {
        // 90 % of the slots when the count is just under a power of two.
        let keys = (8.0 * 1024.0 * MAX_LOAD) as usize;
        let mut index = BucketIndex::new(keys);
        assert_eq!(index.mask + 1, 1024);
        let mut state = 0x1234_5678_u64;
        let mut hashes = Vec::new();
        for entry in 0..keys as u32 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let hash = state ^ (state >> 29);
            assert!(index.insert(hash, entry), "entry {entry}");
            hashes.push(hash);
        }
        assert!(index.stash.is_empty(), "{} stashed", index.stash.len());
        for (entry, &hash) in hashes.iter().enumerate() {
            assert!(lookup(&index, hash, entry as u32), "entry {entry}");
        }
    }

    #[test]
    fn keys_of_one_hash_overflow_to_the_stash_and_back_out() {
        let mut index = BucketIndex::new(16);
        let hash = 0xabcd_0000_0000_0003;
        let n = 2 * SLOTS + STASH_MIN;
        for entry in 0..n as u32 {
            assert!(index.insert(hash, entry));
        }
        assert!(!index.insert(hash, n as u32), "stash full");
        assert_eq!(index.stash.len(), STASH_MIN);
        for entry in 0..n as u32 {
            assert!(lookup(&index, hash, entry));
        }
        for entry in (0..n as u32).step_by(2) {
            index.remove(hash, entry);
        }
        for entry in 0..n as u32 {
            assert_eq!(lookup(&index, hash, entry), entry % 2 == 1, "entry {entry}");
        }
        assert_eq!(
            usize::from(index.bucket(index.probe(hash).primary).stashed),
            index.stash.len()
        );
    }

    proptest! {
        /// Four buckets filled past their 32 slots: every insert beyond the
        /// first few displaces, often along chains, and the rest is stashed.
        #[test]
        fn a_crowded_index_behaves_as_a_map(
            ops in prop::collection::vec((any::<bool>(), any::<u64>(), 0..96u32), 1..400),
        ) {
            let mut index = BucketIndex::new(28);
            prop_assert_eq!(index.mask, 3);
            let mut model: HashMap<u32, u64> = HashMap::new();
            for (insert, hash, entry) in ops {
                if insert && !model.contains_key(&entry) {
                    if index.insert(hash, entry) {
                        model.insert(entry, hash);
                    } else {
                        // Only a full stash refuses a key.
                        prop_assert_eq!(index.stash.len(), STASH_MIN);
                    }
                } else if let Some(hash) = model.remove(&entry) {
                    index.remove(hash, entry);
                    prop_assert!(!lookup(&index, hash, entry), "entry {} still found", entry);
                }
                for (&entry, &hash) in &model {
                    prop_assert!(lookup(&index, hash, entry), "entry {} lost", entry);
                }
                let stashed: usize = index.buckets().iter().map(|b| usize::from(b.stashed)).sum();
                prop_assert_eq!(stashed, index.stash.len());
            }
        }
    }
}

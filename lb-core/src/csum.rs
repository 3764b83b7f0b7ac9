//! Internet checksums: full computation (RFC 1071) and incremental update (RFC 1624).
//!
//! Rewrites never recompute a checksum over the payload: they fold the difference of
//! the changed 16-bit words into the old checksum with `HC' = ~(~HC + ~m + m')`.

use std::net::Ipv4Addr;

/// One's-complement sum of `data` as big-endian 16-bit words (odd tail padded with
/// zero), added to `initial`, not yet folded or inverted.
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff);
    }
    let mut words = chunks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold64(acc)
}

fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit one's-complement accumulator into 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum of `data`: the inverted folded sum.
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data, 0))
}

/// Whether a header of whole 32-bit words (an IPv4 header, options included)
/// sums to all ones, checksum field included: the per-packet check, in 32-bit
/// steps instead of [`checksum`]'s general loop (the one's-complement sum of the
/// 32-bit words folds to that of the 16-bit ones).
#[inline]
pub fn header_is_intact(header: &[u8]) -> bool {
    if header.len() % 4 != 0 {
        return checksum(header) == 0;
    }
    let mut acc = 0u64;
    for w in header.chunks_exact(4) {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    fold(fold64(acc)) == 0xffff
}

/// The partial sum of the IPv4 pseudo-header for a TCP or UDP checksum.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4_len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(proto)
        + u32::from(l4_len)
}

/// Updates checksum `old` for one 16-bit word changing from `from` to `to` (RFC 1624 eqn. 3).
#[inline]
pub fn update16(old: u16, from: u16, to: u16) -> u16 {
    !fold(u32::from(!old) + u32::from(!from) + u32::from(to))
}

/// Updates checksum `old` for a 32-bit field (an IPv4 address) changing.
#[inline]
pub fn update32(old: u16, from: u32, to: u32) -> u16 {
    let acc = u32::from(!old)
        + u32::from(!(from >> 16) as u16)
        + u32::from(!(from as u16))
        + (to >> 16)
        + (to & 0xffff);
    !fold(acc)
}

/// Updates checksum `old` for an IPv4 address changing.
#[inline]
pub fn update_addr(old: u16, from: Ipv4Addr, to: Ipv4Addr) -> u16 {
    update32(old, u32::from(from), u32::from(to))
}

/// Updates checksum `old` for a run of bytes changing from `from` to `to` (equal
/// lengths, starting at an even offset of the checksummed data).
pub fn update_bytes(old: u16, from: &[u8], to: &[u8]) -> u16 {
    debug_assert_eq!(from.len(), to.len());
    let removed = u32::from(!fold(sum(from, 0)));
    !fold(u32::from(!old) + removed + sum(to, 0))
}

/// The accumulated difference of several changed 16-bit words, applied to a
/// checksum in one fold: cheaper than updating field by field.
#[derive(Clone, Copy, Debug, Default)]
pub struct Delta(u32);

impl Delta {
    /// Records a 16-bit word changing from `from` to `to`.
    #[inline]
    pub fn word(&mut self, from: u16, to: u16) {
        self.0 += u32::from(!from) + u32::from(to);
    }

    /// Records an IPv4 address changing.
    #[inline]
    pub fn addr(&mut self, from: Ipv4Addr, to: Ipv4Addr) {
        let (f, t) = (u32::from(from), u32::from(to));
        self.word((f >> 16) as u16, (t >> 16) as u16);
        self.word(f as u16, t as u16);
    }

    /// The checksum `old` updated by every recorded change.
    #[inline]
    pub fn apply(self, old: u16) -> u16 {
        !fold(u32::from(!old) + fold(self.0) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_check_agrees_with_the_checksum() {
        // A real header (RFC 1071's example family), then every single-bit
        // corruption of it, then headers of other lengths.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let sum = checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        assert!(header_is_intact(&h));
        for bit in 0..h.len() * 8 {
            let mut bad = h;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(header_is_intact(&bad), checksum(&bad) == 0, "bit {bit}");
        }
        let mut x = 0x1234_5678u32;
        for len in [0usize, 2, 3, 24, 60, 61] {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            assert_eq!(
                header_is_intact(&data),
                checksum(&data) == 0,
                "length {len}"
            );
            if len >= 12 && len % 4 == 0 {
                // The same bytes with a right checksum: a header with options.
                let mut good = data.clone();
                good[10..12].fill(0);
                let sum = checksum(&good);
                good[10..12].copy_from_slice(&sum.to_be_bytes());
                assert!(header_is_intact(&good), "length {len}");
            }
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56], 0)), 0x1234 + 0x5600);
    }

    #[test]
    fn known_ipv4_header() {
        // A header from a capture: checksum field b861.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        hdr[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&hdr), 0);
    }

    #[test]
    fn update_matches_recompute_for_an_address_change() {
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let from = Ipv4Addr::new(192, 168, 0, 1);
        let to = Ipv4Addr::new(10, 1, 2, 3);
        hdr[12..16].copy_from_slice(&to.octets());
        let updated = update_addr(0xb861, from, to);
        hdr[10..12].fill(0);
        assert_eq!(updated, checksum(&hdr));
    }

    proptest::proptest! {
        /// Any set of aligned word changes, folded incrementally, equals a full recompute.
        #[test]
        fn incremental_equals_recompute(
            mut data in proptest::collection::vec(proptest::prelude::any::<u8>(), 4..200usize),
            changes in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u16>()), 1..8),
        ) {
            if data.len() % 2 == 1 { data.pop(); }
            data[0..2].fill(0);
            let sum = checksum(&data);
            data[0..2].copy_from_slice(&sum.to_be_bytes());
            let mut delta = Delta::default();
            let mut one_by_one = sum;
            for (at, value) in changes {
                let word = 1 + at % (data.len() / 2 - 1);
                let old = u16::from_be_bytes([data[2 * word], data[2 * word + 1]]);
                data[2 * word..2 * word + 2].copy_from_slice(&value.to_be_bytes());
                delta.word(old, value);
                one_by_one = update16(one_by_one, old, value);
            }
            let incremental = delta.apply(sum);
            data[0..2].fill(0);
            let full = checksum(&data);
            proptest::prop_assert_eq!(incremental, full);
            proptest::prop_assert_eq!(one_by_one, full);
        }
    }
}

//! In-place edits of TCP segments: option walks, MSS changes, SACK edges,
//! sequence shifts. Every edit folds its checksum change into a [`Delta`] the
//! caller applies once.

use crate::csum::Delta;
use crate::wire::{get_u16, get_u32, set_u16, set_u32};

/// Option kinds.
pub const KIND_END: u8 = 0;
/// No-operation (padding).
pub const KIND_NOP: u8 = 1;
/// Maximum segment size (length 4).
pub const KIND_MSS: u8 = 2;
/// Selective acknowledgement blocks (length 2 + 8n).
pub const KIND_SACK: u8 = 5;
/// TCP Option Address (TOA), length 8: port and IPv4 address of the client.
pub const KIND_TOA: u8 = 254;
/// Length of a TOA option.
pub const TOA_LEN: usize = 8;

/// Offset of the TCP checksum in the header.
pub const CSUM_AT: usize = 16;

/// Header length of the TCP segment `l4` (data offset × 4), unchecked.
#[inline]
pub fn header_len(l4: &[u8]) -> usize {
    usize::from(l4[12] >> 4) * 4
}

/// Calls `f(offset, kind, len)` for each option of the segment (offsets from the
/// start of the TCP header). Stops at END or at a malformed length.
pub fn for_each_option(l4: &[u8], mut f: impl FnMut(usize, u8, usize)) {
    let end = header_len(l4).min(l4.len());
    let mut at = 20;
    while at < end {
        match l4[at] {
            KIND_END => return,
            KIND_NOP => at += 1,
            kind => {
                if at + 1 >= end {
                    return;
                }
                let len = usize::from(l4[at + 1]);
                if len < 2 || at + len > end {
                    return;
                }
                f(at, kind, len);
                at += len;
            }
        }
    }
}

/// Writes `new` at `at` in `buf`, folding the change of every 16-bit word it
/// touches (even when `at` is odd) into `delta`.
pub fn patch(buf: &mut [u8], at: usize, new: &[u8], delta: &mut Delta) {
    let lo = at & !1;
    let hi = ((at + new.len() + 1) & !1).min(buf.len() & !1);
    let mut old = [0u16; 40];
    let words = (hi.saturating_sub(lo) / 2).min(old.len());
    for (k, w) in old.iter_mut().enumerate().take(words) {
        *w = get_u16(buf, lo + 2 * k);
    }
    buf[at..at + new.len()].copy_from_slice(new);
    for (k, w) in old.iter().enumerate().take(words) {
        delta.word(*w, get_u16(buf, lo + 2 * k));
    }
    if hi < at + new.len() {
        // A last odd byte at the very end of the buffer (cannot happen inside a
        // TCP header, whose length is a multiple of four): pad it as the sum does.
        let last = at + new.len() - 1;
        delta.word(0, u16::from(buf[last]) << 8);
    }
}

/// Sets the MSS option to `f(current)`; returns the old and new values when the
/// segment has an MSS option and the value changed.
pub fn edit_mss(
    l4: &mut [u8],
    delta: &mut Delta,
    f: impl FnOnce(u16) -> u16,
) -> Option<(u16, u16)> {
    let mut found = None;
    for_each_option(l4, |at, kind, len| {
        if kind == KIND_MSS && len == 4 && found.is_none() {
            found = Some(at);
        }
    });
    let at = found?;
    let old = get_u16(l4, at + 2);
    let new = f(old);
    if new == old {
        return None;
    }
    patch(l4, at + 2, &new.to_be_bytes(), delta);
    Some((old, new))
}

/// Blanks every TOA option of the segment with NOPs; returns how many it found.
pub fn strip_toa(l4: &mut [u8], delta: &mut Delta) -> usize {
    let mut found = [0usize; 5];
    let mut n = 0;
    for_each_option(l4, |at, kind, len| {
        if kind == KIND_TOA && len == TOA_LEN && n < found.len() {
            found[n] = at;
            n += 1;
        }
    });
    for &at in &found[..n] {
        patch(l4, at, &[KIND_NOP; TOA_LEN], delta);
    }
    n
}

/// Whether `a` is after `b` in sequence space.
#[inline]
pub fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// Maps a sequence number of the server's view back to the client's, for a stream
/// into which `delta` bytes were inserted at client sequence `start`.
#[inline]
pub fn unshift(x: u32, start: u32, delta: u32) -> u32 {
    if seq_after(x, start.wrapping_add(delta)) || x == start.wrapping_add(delta) {
        x.wrapping_sub(delta)
    } else if seq_after(x, start) {
        start
    } else {
        x
    }
}

/// Sets the sequence number.
pub fn set_seq(l4: &mut [u8], seq: u32, delta: &mut Delta) {
    let old = get_u32(l4, 4);
    delta.word((old >> 16) as u16, (seq >> 16) as u16);
    delta.word(old as u16, seq as u16);
    set_u32(l4, 4, seq);
}

/// Sets the acknowledgement number.
pub fn set_ack(l4: &mut [u8], ack: u32, delta: &mut Delta) {
    let old = get_u32(l4, 8);
    delta.word((old >> 16) as u16, (ack >> 16) as u16);
    delta.word(old as u16, ack as u16);
    set_u32(l4, 8, ack);
}

/// Applies `f` to every SACK block edge; returns whether any changed.
pub fn map_sack(l4: &mut [u8], delta: &mut Delta, f: impl Fn(u32) -> u32) -> bool {
    let mut blocks = [(0usize, 0usize); 2];
    let mut n = 0;
    for_each_option(l4, |at, kind, len| {
        if kind == KIND_SACK && len >= 10 && (len - 2) % 8 == 0 && n < blocks.len() {
            blocks[n] = (at + 2, (len - 2) / 4);
            n += 1;
        }
    });
    let mut changed = false;
    for &(start, edges) in &blocks[..n] {
        for e in 0..edges {
            let at = start + 4 * e;
            let old = get_u32(l4, at);
            let new = f(old);
            if new != old {
                patch(l4, at, &new.to_be_bytes(), delta);
                changed = true;
            }
        }
    }
    changed
}

/// Applies a folded change to the TCP checksum of `l4`.
pub fn apply(l4: &mut [u8], delta: Delta) {
    let sum = delta.apply(get_u16(l4, CSUM_AT));
    set_u16(l4, CSUM_AT, sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_options_and_stops_at_garbage() {
        // MSS, NOP, NOP, SACK-permitted, END
        let mut seg = vec![0u8; 32];
        seg[12] = 0x80;
        seg[20..32].copy_from_slice(&[2, 4, 5, 0xb4, 1, 1, 4, 2, 0, 0, 0, 0]);
        let mut seen = Vec::new();
        for_each_option(&seg, |at, kind, len| seen.push((at, kind, len)));
        assert_eq!(seen, vec![(20, 2, 4), (26, 4, 2)]);
        seg[21] = 40; // a length running past the header
        seen.clear();
        for_each_option(&seg, |at, kind, len| seen.push((at, kind, len)));
        assert!(seen.is_empty());
    }

    #[test]
    fn unshift_maps_the_inserted_range_to_its_start() {
        let start = u32::MAX - 5;
        assert_eq!(
            unshift(start.wrapping_add(40), start, 28),
            start.wrapping_add(12)
        );
        assert_eq!(unshift(start.wrapping_add(10), start, 28), start);
        assert_eq!(unshift(start, start, 28), start);
        assert_eq!(
            unshift(start.wrapping_sub(1), start, 28),
            start.wrapping_sub(1)
        );
        assert_eq!(unshift(start.wrapping_add(28), start, 28), start);
    }
}

//! TCP sequence-window tracking, as Linux conntrack does it (`tcp_in_window`,
//! after Guido van Rooij's "Real Stateful TCP Packet Filtering in IP Filter").
//!
//! Each side remembers the highest sequence it sent (`end`), the highest it may
//! send given what the other side advertised (`maxend`) and the largest window it
//! advertised (`maxwin`). A segment is in the window when
//!
//! 1. its sequence does not pass what the receiver allowed (`seq <= sender.maxend`),
//! 2. its end is not older than one receiver window (`end > sender.end - receiver.maxwin`),
//! 3. it acknowledges nothing the receiver never sent (`ack <= receiver.end`),
//! 4. and nothing older than one sender window (`ack > receiver.end - max(sender.maxwin, 66000)`).
//!
//! A forged segment must therefore guess a sequence within about two windows and
//! an acknowledgement within about one: a blind RST or data injection has a
//! chance of roughly `window / 2^32`. A segment outside the window leaves the
//! connection as it was: no state change, no timeout refresh, not forwarded.
//!
//! The tracker needs both directions, so it applies to NAT and FullNAT. For DR and
//! TUN the director sees only the client's half and the tracker stays off.

use super::table::Side;
use crate::wire::tcp::{flags, TcpSegment};

/// Acknowledgements may lag by at least this much (conntrack's `MAXACKWINDOW`
/// floor): a window's worth of data in flight on a slow-start path.
const MIN_ACK_WINDOW: u32 = 66_000;

/// The largest shift RFC 7323 allows; larger offers are clamped as Linux does.
const MAX_WINDOW_SCALE: u8 = 14;

/// What a segment says of its sequence space: the fields the tracker reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentSeq {
    /// TCP flag byte.
    pub flags: u8,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (meaningful with ACK set).
    pub ack: u32,
    /// Advertised window, unscaled as on the wire.
    pub window: u16,
    /// Payload bytes.
    pub payload_len: u32,
    /// The window-scale option of a SYN, if offered.
    pub window_scale: Option<u8>,
}

impl SegmentSeq {
    /// What `tcp` says; `payload_len` counts the payload bytes the segment
    /// carries (less than the datagram's for a first fragment).
    pub fn of<T: AsRef<[u8]>>(tcp: &TcpSegment<T>) -> Self {
        let bits = tcp.flags();
        SegmentSeq {
            flags: bits,
            seq: tcp.seq(),
            ack: tcp.ack(),
            window: tcp.window(),
            payload_len: tcp.payload().len() as u32,
            window_scale: if bits & flags::SYN != 0 {
                tcp.window_scale()
            } else {
                None
            },
        }
    }

    /// The sequence number after the segment: SYN and FIN take one each.
    fn end(&self) -> u32 {
        self.seq
            .wrapping_add(self.payload_len)
            .wrapping_add(u32::from(self.flags & flags::SYN != 0))
            .wrapping_add(u32::from(self.flags & flags::FIN != 0))
    }
}

/// One side's sequence space. 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SideSeq {
    end: u32,
    maxend: u32,
    /// Zero until the side's first segment is seen.
    maxwin: u32,
    scale: u8,
    offered_scale: bool,
}

impl SideSeq {
    fn known(&self) -> bool {
        self.maxwin != 0
    }

    /// Starts the side from its SYN (or SYN-ACK): windows in SYNs are never scaled.
    fn start(&mut self, seg: &SegmentSeq) {
        let end = seg.end();
        *self = SideSeq {
            end,
            maxend: end,
            maxwin: u32::from(seg.window).max(1),
            scale: seg.window_scale.map_or(0, |s| s.min(MAX_WINDOW_SCALE)),
            offered_scale: seg.window_scale.is_some(),
        };
    }

    /// Starts the side from a segment in mid-stream (its first segment was not
    /// a SYN): trusts it, as conntrack's pick-up does.
    fn pick_up(&mut self, seg: &SegmentSeq) {
        let end = seg.end();
        let maxwin = (u32::from(seg.window) << self.scale).max(1);
        self.end = end;
        self.maxwin = maxwin;
        self.maxend = end.wrapping_add(maxwin);
    }
}

/// Both sides' sequence spaces of one TCP connection. 32 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpWindow {
    client: SideSeq,
    server: SideSeq,
}

/// The segment is outside what the connection's window accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfWindow;

/// `a` comes after `b` in sequence space.
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

/// `a` comes before `b` in sequence space.
fn before(a: u32, b: u32) -> bool {
    after(b, a)
}

impl TcpWindow {
    /// The next sequence number the server expects from the client, once the
    /// client's SYN has been seen: what a reset on the client's behalf carries.
    pub fn client_next(&self) -> Option<u32> {
        self.client.known().then_some(self.client.end)
    }

    /// Checks a segment from `side` and, when it is in the window, takes in what
    /// it advances. An out-of-window segment changes nothing.
    pub fn track(&mut self, side: Side, seg: &SegmentSeq) -> Result<(), OutOfWindow> {
        let (sender, receiver) = match side {
            Side::Client => (&mut self.client, &mut self.server),
            Side::Server => (&mut self.server, &mut self.client),
        };
        let syn = seg.flags & flags::SYN != 0;
        if !sender.known() || (syn && !receiver.known() && after(seg.end(), sender.end)) {
            // The side's first segment, or a client that restarted its handshake
            // with a later sequence before the server answered (RFC 9293: a
            // reinitialized TCP only needs larger sequence numbers).
            if syn {
                sender.start(seg);
                if receiver.known() && !(sender.offered_scale && receiver.offered_scale) {
                    // The answering SYN: scaling is on only when both offer it
                    // (RFC 7323).
                    sender.scale = 0;
                    receiver.scale = 0;
                }
            } else {
                sender.pick_up(seg);
                if !receiver.known() {
                    let sack = if seg.flags & flags::ACK != 0 {
                        seg.ack
                    } else {
                        0
                    };
                    receiver.end = sack;
                    receiver.maxend = sack;
                }
            }
        }
        let mut seq = seg.seq;
        let mut end = seg.end();
        let ack = if seg.flags & flags::ACK == 0 || (seg.flags & flags::RST != 0 && seg.ack == 0) {
            // No acknowledgement to check (or the zero one of stacks that set ACK
            // on a RST): take it as acknowledging exactly what the receiver sent.
            receiver.end
        } else {
            seg.ack
        };
        if seg.flags & flags::RST != 0 && seq == 0 && !receiver.known() {
            // A RST answering a SYN carries sequence zero.
            seq = sender.end;
            end = sender.end;
        }
        let max_ack_window = sender.maxwin.max(MIN_ACK_WINDOW);
        let in_window = before(seq, sender.maxend.wrapping_add(1))
            && (!receiver.known()
                || after(
                    end,
                    sender.end.wrapping_sub(receiver.maxwin).wrapping_sub(1),
                ))
            && (!receiver.known()
                || (before(ack, receiver.end.wrapping_add(1))
                    && after(
                        ack,
                        receiver.end.wrapping_sub(max_ack_window).wrapping_sub(1),
                    )));
        if !in_window {
            return Err(OutOfWindow);
        }
        let window = if syn {
            u32::from(seg.window)
        } else {
            u32::from(seg.window) << sender.scale
        };
        sender.maxwin = sender.maxwin.max(window);
        if after(end, sender.end) {
            sender.end = end;
        }
        if receiver.known() && after(end, sender.maxend) {
            receiver.maxwin = receiver
                .maxwin
                .wrapping_add(end.wrapping_sub(sender.maxend));
        }
        if seg.flags & flags::ACK != 0
            && after(ack.wrapping_add(window), receiver.maxend.wrapping_sub(1))
        {
            receiver.maxend = ack.wrapping_add(window);
            if window == 0 {
                receiver.maxend = receiver.maxend.wrapping_add(1);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tcp::flags::{ACK, FIN, RST, SYN};

    const CLIENT_ISN: u32 = 1_000;
    const SERVER_ISN: u32 = 0xffff_ff00; // wraps during the test

    fn seg(flags: u8, seq: u32, ack: u32, window: u16, payload_len: u32) -> SegmentSeq {
        SegmentSeq {
            flags,
            seq,
            ack,
            window,
            payload_len,
            window_scale: None,
        }
    }

    /// A connection after its handshake: client window 64240 (scale 7 offered by
    /// both), server window 65160.
    fn established() -> TcpWindow {
        let mut w = TcpWindow::default();
        let mut syn = seg(SYN, CLIENT_ISN, 0, 64240, 0);
        syn.window_scale = Some(7);
        w.track(Side::Client, &syn).unwrap();
        let mut synack = seg(SYN | ACK, SERVER_ISN, CLIENT_ISN + 1, 65160, 0);
        synack.window_scale = Some(7);
        w.track(Side::Server, &synack).unwrap();
        w.track(
            Side::Client,
            &seg(ACK, CLIENT_ISN + 1, SERVER_ISN.wrapping_add(1), 502, 0),
        )
        .unwrap();
        w
    }

    #[test]
    fn a_normal_exchange_stays_in_the_window() {
        let mut w = established();
        let (mut c, mut s) = (CLIENT_ISN + 1, SERVER_ISN.wrapping_add(1));
        w.track(Side::Client, &seg(ACK, c, s, 502, 100)).unwrap();
        c += 100;
        // The server sends 40 full segments without waiting (within 64240 << 7).
        for _ in 0..40 {
            w.track(Side::Server, &seg(ACK, s, c, 509, 1448)).unwrap();
            s = s.wrapping_add(1448);
        }
        w.track(Side::Client, &seg(ACK, c, s, 502, 0)).unwrap();
        w.track(Side::Client, &seg(FIN | ACK, c, s, 502, 0))
            .unwrap();
        w.track(Side::Server, &seg(FIN | ACK, s, c + 1, 509, 0))
            .unwrap();
        w.track(Side::Client, &seg(ACK, c + 1, s.wrapping_add(1), 502, 0))
            .unwrap();
    }

    #[test]
    fn retransmissions_and_duplicate_acks_are_accepted() {
        let mut w = established();
        let (c, s) = (CLIENT_ISN + 1, SERVER_ISN.wrapping_add(1));
        w.track(Side::Client, &seg(ACK, c, s, 502, 1000)).unwrap();
        w.track(Side::Client, &seg(ACK, c, s, 502, 1000)).unwrap();
        w.track(Side::Server, &seg(ACK, s, c, 509, 0)).unwrap();
        w.track(Side::Server, &seg(ACK, s, c + 1000, 509, 0))
            .unwrap();
        w.track(Side::Server, &seg(ACK, s, c + 1000, 509, 0))
            .unwrap();
    }

    #[test]
    fn a_blind_rst_is_refused_and_changes_nothing() {
        let mut w = established();
        let before = w;
        let (c, s) = (CLIENT_ISN + 1, SERVER_ISN.wrapping_add(1));
        for seq in [
            c.wrapping_add(1 << 30),
            c.wrapping_sub(1 << 30),
            c ^ 0x8000_0000,
        ] {
            assert_eq!(
                w.track(Side::Client, &seg(RST, seq, 0, 0, 0)),
                Err(OutOfWindow)
            );
        }
        assert_eq!(
            w.track(
                Side::Server,
                &seg(RST | ACK, s.wrapping_add(1 << 31), c, 0, 0)
            ),
            Err(OutOfWindow)
        );
        assert_eq!(w, before);
        w.track(Side::Client, &seg(RST, c, 0, 0, 0)).unwrap();
    }

    #[test]
    fn data_with_a_wild_sequence_or_ack_is_refused() {
        let mut w = established();
        let (c, s) = (CLIENT_ISN + 1, SERVER_ISN.wrapping_add(1));
        // Past what the server allowed (its SYN-ACK advertised 65160 bytes).
        assert!(w
            .track(Side::Client, &seg(ACK, c.wrapping_add(1 << 28), s, 502, 10))
            .is_err());
        // Acknowledging data the server never sent.
        assert!(w
            .track(Side::Client, &seg(ACK, c, s.wrapping_add(1 << 20), 502, 10))
            .is_err());
        // Acknowledging something far older than any window.
        assert!(w
            .track(Side::Server, &seg(ACK, s, c.wrapping_sub(1 << 24), 509, 10))
            .is_err());
        // A segment from long ago.
        assert!(w
            .track(Side::Server, &seg(ACK, s.wrapping_sub(1 << 26), c, 509, 10))
            .is_err());
        w.track(Side::Client, &seg(ACK, c, s, 502, 10)).unwrap();
    }

    #[test]
    fn without_scaling_on_both_sides_windows_are_not_scaled() {
        let mut w = TcpWindow::default();
        let mut syn = seg(SYN, CLIENT_ISN, 0, 65535, 0);
        syn.window_scale = Some(9);
        w.track(Side::Client, &syn).unwrap();
        w.track(
            Side::Server,
            &seg(SYN | ACK, SERVER_ISN, CLIENT_ISN + 1, 8192, 0),
        )
        .unwrap();
        let s = SERVER_ISN.wrapping_add(1);
        w.track(Side::Client, &seg(ACK, CLIENT_ISN + 1, s, 65535, 0))
            .unwrap();
        // 65535 << 9 would allow this; unscaled it is far outside.
        assert!(w
            .track(
                Side::Server,
                &seg(ACK, s.wrapping_add(1 << 22), CLIENT_ISN + 1, 8192, 1)
            )
            .is_err());
    }

    #[test]
    fn the_client_next_sequence_follows_its_syn() {
        let mut w = TcpWindow::default();
        assert_eq!(w.client_next(), None);
        w.track(Side::Client, &seg(SYN, CLIENT_ISN, 0, 64240, 0))
            .unwrap();
        assert_eq!(w.client_next(), Some(CLIENT_ISN + 1));
    }

    #[test]
    fn a_rst_answering_a_syn_is_accepted() {
        let mut w = TcpWindow::default();
        w.track(Side::Client, &seg(SYN, CLIENT_ISN, 0, 64240, 0))
            .unwrap();
        w.track(Side::Server, &seg(RST | ACK, 0, CLIENT_ISN + 1, 0, 0))
            .unwrap();
    }

    #[test]
    fn a_restarted_handshake_with_a_later_isn_is_accepted() {
        let mut w = TcpWindow::default();
        w.track(Side::Client, &seg(SYN, CLIENT_ISN, 0, 64240, 0))
            .unwrap();
        w.track(Side::Client, &seg(SYN, CLIENT_ISN, 0, 64240, 0))
            .unwrap();
        let later = CLIENT_ISN + 5_000_000;
        w.track(Side::Client, &seg(SYN, later, 0, 64240, 0))
            .unwrap();
        w.track(
            Side::Server,
            &seg(SYN | ACK, SERVER_ISN, later + 1, 65160, 0),
        )
        .unwrap();
    }

    #[test]
    fn the_record_is_small() {
        assert!(size_of::<TcpWindow>() <= 32, "{}", size_of::<TcpWindow>());
    }
}

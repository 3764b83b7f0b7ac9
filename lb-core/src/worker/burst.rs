//! Bursts: the pipeline the data plane drives once per received burst.
//!
//! Stage one parses every frame of the burst, counts it and looks the flow keys
//! of the whole burst up in the connection table together (so that their cache
//! misses overlap); stage two handles each frame in arrival order from what
//! stage one found. Handling in order keeps the verdicts exactly those of
//! processing the frames one at a time: a SYN that creates a connection, or a
//! removal, makes the later frames of the burst look up again.

use std::net::{IpAddr, Ipv4Addr};

use super::{Origin, Verdict, Worker};
use crate::conn::{ConnTable, Side};
use crate::flow::FlowKey;
use crate::frame::Frame;
use crate::ids::PortId;
use crate::meta::PacketMeta;
use crate::stats::DropReason;
use crate::time::Instant;

/// Frames a burst holds at most; longer bursts are handled in slices.
pub const MAX_BURST: usize = 32;

/// A burst of received frames the worker reads and rewrites in place: mbufs in
/// the data plane, buffers in tests.
pub trait Burst {
    /// Frames in the burst.
    fn len(&self) -> usize;

    /// Whether the burst is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of frame `i`.
    fn data(&self, i: usize) -> &[u8];

    /// Runs `f` on frame `i`, which it may rewrite, grow or shrink.
    fn with_frame<R>(&mut self, i: usize, f: impl FnOnce(&mut Frame<'_>) -> R) -> R;
}

/// A lookup made for a frame before its turn: still right while the table has
/// seen no insert or removal since (`changes`), for frames after a SYN or an
/// expiry in the same burst looked up again.
#[derive(Clone, Copy, Debug)]
pub(super) struct Found {
    changes: u64,
    hit: Option<(u32, Side)>,
}

impl Found {
    /// The connection of the frame's flow key, from the hint when it is still
    /// right.
    pub(super) fn or_lookup(
        hint: Option<Found>,
        conns: &ConnTable,
        key: &FlowKey,
    ) -> Option<(u32, Side)> {
        match hint {
            Some(found) if found.changes == conns.changes() => found.hit,
            _ => conns.lookup(key),
        }
    }
}

/// The key slots of frames without a flow.
const NO_KEY: FlowKey = FlowKey {
    proto: 0,
    src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    sport: 0,
    dport: 0,
};

impl Worker {
    /// Handles a burst of frames received on `port` at `now`, writing frame `i`'s
    /// verdict into `verdicts[i]`.
    ///
    /// # Panics
    /// If `verdicts` is shorter than the burst.
    pub fn process_burst(
        &mut self,
        now: Instant,
        port: PortId,
        burst: &mut impl Burst,
        verdicts: &mut [Verdict],
    ) {
        let n = burst.len();
        assert!(verdicts.len() >= n, "one verdict per frame");
        let mut start = 0;
        while start < n {
            let end = n.min(start + MAX_BURST);
            let mut metas = [Err(DropReason::Malformed); MAX_BURST];
            // The flow keys of the burst, looked up together so that their
            // bucket and record misses overlap.
            let mut keys = [NO_KEY; MAX_BURST];
            let mut owners = [0usize; MAX_BURST];
            let mut flows = 0;
            for (i, meta) in (start..end).zip(&mut metas) {
                let data = burst.data(i);
                self.counters.rx_packets.inc();
                self.counters.rx_bytes.add(data.len() as u64);
                *meta = PacketMeta::parse(data);
                let key = meta
                    .as_ref()
                    .ok()
                    .and_then(|m| m.ipv4.as_ref())
                    .and_then(|ip| (!ip.is_fragment()).then(|| ip.flow_key()).flatten());
                if let Some(key) = key {
                    keys[flows] = key;
                    owners[flows] = i - start;
                    flows += 1;
                }
            }
            let mut found = [None; MAX_BURST];
            self.conns.lookup_burst(&keys[..flows], &mut found[..flows]);
            let mut hints = [None; MAX_BURST];
            let changes = self.conns.changes();
            for (k, &i) in owners[..flows].iter().enumerate() {
                hints[i] = Some(Found {
                    changes,
                    hit: found[k],
                });
            }
            for ((i, meta), hint) in (start..end).zip(metas).zip(hints) {
                verdicts[i] = burst.with_frame(i, |frame| {
                    self.handle(now, port, frame, Origin::Port, meta, hint)
                });
            }
            start = end;
        }
    }

    /// Handles one frame received on `port` at `now`, as a burst of one would.
    pub fn process(&mut self, now: Instant, port: PortId, frame: &mut Frame<'_>) -> Verdict {
        self.counters.rx_packets.inc();
        self.counters.rx_bytes.add(frame.len() as u64);
        let meta = PacketMeta::parse(frame.data());
        self.handle(now, port, frame, Origin::Port, meta, None)
    }
}

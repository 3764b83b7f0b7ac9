//! Bursts: the pipeline the data plane drives once per received burst.
//!
//! Stage one parses every frame of the burst and counts it; stage two handles
//! each frame in arrival order from what stage one found. Handling in order
//! keeps the verdicts exactly those of processing the frames one at a time (a
//! SYN creates the connection the next frame of the same burst finds).

use super::{Origin, Verdict, Worker};
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
            for (i, meta) in (start..end).zip(&mut metas) {
                let data = burst.data(i);
                self.counters.rx_packets.inc();
                self.counters.rx_bytes.add(data.len() as u64);
                *meta = PacketMeta::parse(data);
            }
            for (i, meta) in (start..end).zip(metas) {
                verdicts[i] =
                    burst.with_frame(i, |frame| self.handle(now, port, frame, Origin::Port, meta));
            }
            start = end;
        }
    }

    /// Handles one frame received on `port` at `now`, as a burst of one would.
    pub fn process(&mut self, now: Instant, port: PortId, frame: &mut Frame<'_>) -> Verdict {
        self.counters.rx_packets.inc();
        self.counters.rx_bytes.add(frame.len() as u64);
        let meta = PacketMeta::parse(frame.data());
        self.handle(now, port, frame, Origin::Port, meta)
    }
}

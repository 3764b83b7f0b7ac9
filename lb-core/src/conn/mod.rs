//! Connection tracking: the per-worker table, the IPVS state machine, timeouts and
//! the timer wheel that expires entries, and TCP window tracking.

mod fifo;
mod index;
mod state;
mod table;
#[cfg(test)]
mod table_model;
mod timer;
mod window;

pub use state::{next_state, Direction, TcpEvent, TcpState, Timeouts, MAX_TIMEOUT_SECS};
pub use table::{
    Conn, ConnTable, InsertError, MemoryRegion, Side, SidePorts, XmitState, LOOKUP_BURST,
};
pub use timer::TimerWheel;
pub use window::{OutOfWindow, SegmentSeq, TcpWindow};

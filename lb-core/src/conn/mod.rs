//! Connection tracking: the per-worker table, the IPVS state machine, timeouts and
//! the timer wheel that expires entries.

mod state;
mod table;
mod timer;

pub use state::{next_state, Direction, TcpEvent, TcpState, Timeouts, MAX_TIMEOUT_SECS};
pub use table::{Conn, ConnTable, InsertError, Side, SidePorts, XmitState};
pub use timer::TimerWheel;

//! What happens to connections, for the control plane: connection sync sends
//! new and changed connections to the peer director, passive health checks
//! watch handshakes complete or time out. The worker queues events in a
//! bounded queue the caller drains with [`Worker::poll_event`], as quinn's
//! `poll_event`; when nobody asked for events (capacity 0) nothing is queued.

use std::collections::VecDeque;

use super::Worker;
use crate::conn::Conn;

/// Why a connection left the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Its timeout ran out.
    Expired,
    /// A half-open connection gave its place to a new one.
    Evicted,
    /// Removed early: its real server was removed, or a new SYN on a closing
    /// connection started afresh.
    Removed,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnEventKind {
    /// A connection was created.
    Opened,
    /// Its TCP state changed.
    StateChanged,
    /// It left the table.
    Closed(CloseReason),
}

/// One event: what happened, and the connection as it was then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnEvent {
    /// What happened.
    pub kind: ConnEventKind,
    /// The connection after the change (before removal, for `Closed`).
    pub conn: Conn,
}

/// The bounded event queue of one worker.
#[derive(Debug)]
pub(super) struct Events {
    queue: VecDeque<ConnEvent>,
    capacity: usize,
    lost: u64,
}

impl Events {
    pub(super) fn new(capacity: usize) -> Self {
        Events {
            queue: VecDeque::with_capacity(capacity),
            capacity,
            lost: 0,
        }
    }

    /// Queues an event if events are wanted; counts it lost when the queue is
    /// full (the caller drains too slowly).
    #[inline]
    pub(super) fn record(&mut self, kind: ConnEventKind, conn: &Conn) {
        if self.capacity == 0 {
            return;
        }
        if self.queue.len() == self.capacity {
            self.lost += 1;
            return;
        }
        self.queue.push_back(ConnEvent {
            kind,
            conn: conn.clone(),
        });
    }
}

impl Worker {
    /// Queues up to `capacity` connection events for [`Worker::poll_event`]
    /// from now on (0, the default, queues none). Allocates: call it at setup.
    pub fn record_events(&mut self, capacity: usize) {
        self.events = Events::new(capacity);
    }

    /// The next connection event, oldest first.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.queue.pop_front()
    }

    /// Events that did not fit in the queue since the worker started.
    pub fn events_lost(&self) -> u64 {
        self.events.lost
    }
}

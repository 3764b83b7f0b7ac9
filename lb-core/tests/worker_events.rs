//! Connection events for the control plane: what is queued, in which order,
//! and what happens when nobody drains the queue.

use lb_core::conn::TcpState;
use lb_core::wire::tcp::flags;
use lb_core::worker::{CloseReason, ConnEventKind, Worker};

mod common;
use common::*;

fn events(w: &mut Worker) -> Vec<(ConnEventKind, u16, TcpState)> {
    std::iter::from_fn(|| w.poll_event())
        .map(|e| (e.kind, e.conn.client.1, e.conn.state))
        .collect()
}

#[test]
fn a_connection_reports_its_life() {
    let mut w = worker_with("");
    w.record_events(64);
    handshake(&mut w, secs(1), 40000);
    use ConnEventKind::*;
    assert_eq!(
        events(&mut w),
        [
            (Opened, 40000, TcpState::None),
            (StateChanged, 40000, TcpState::SynRecv),
            (StateChanged, 40000, TcpState::Established),
        ]
    );
    // Data changes nothing worth an event; the timeout ends it.
    run(&mut w, secs(2), CLIENT, client_segment(40000, flags::ACK));
    assert_eq!(events(&mut w), []);
    w.poll(secs(2 + 31));
    assert_eq!(
        events(&mut w),
        [(Closed(CloseReason::Expired), 40000, TcpState::Established)]
    );
}

#[test]
fn evictions_are_reported_and_a_full_queue_counts_what_it_lost() {
    let mut w = worker_sized(CONFIG, 2);
    resolve_servers(&mut w);
    w.record_events(4);
    for cport in [1, 2, 3] {
        run(&mut w, secs(1), CLIENT, client_segment(cport, flags::SYN));
    }
    // Two opened and moved to SYN_RECV fill the queue; the third SYN's eviction
    // of the first and its own events are lost.
    let queued = events(&mut w);
    assert_eq!(queued.len(), 4);
    assert_eq!(w.events_lost(), 3);
    run(&mut w, secs(1), CLIENT, client_segment(4, flags::SYN));
    assert_eq!(
        events(&mut w)[0],
        (
            ConnEventKind::Closed(CloseReason::Evicted),
            2,
            TcpState::SynRecv
        )
    );
}

#[test]
fn without_a_reader_nothing_is_queued() {
    let mut w = worker_with("");
    handshake(&mut w, secs(1), 40000);
    assert_eq!(w.poll_event(), None);
    assert_eq!(w.events_lost(), 0);
}

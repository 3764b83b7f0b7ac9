//! A burst is handled exactly as its frames one at a time: ARP, new and
//! established connections, replies for another worker and drops mixed in one
//! burst get the verdicts, rewrites and counters they get alone.

use lb_core::stats::DropReason;
use lb_core::wire::arp;
use lb_core::wire::ethernet;
use lb_core::wire::tcp::flags;
use lb_core::worker::{Verdict, Worker};

mod common;
use common::*;

/// Frames that depend on each other within the burst: the SYN of port 40001
/// creates the connection its ACK and data find two frames later.
fn mixed_burst() -> Vec<Vec<u8>> {
    let arp_request = arp_frame(
        arp::OP_REQUEST,
        (CLIENT_MAC, CIP),
        (lb_core::wire::MacAddr::ZERO, VIP),
    );
    let foreign_mac = eth(
        lb_core::wire::MacAddr([2, 9, 9, 9, 9, 9]),
        CLIENT_MAC,
        ethernet::ETHERTYPE_IPV4,
        &tcp((CIP, 40009), (VIP, 80), flags::SYN, b""),
    );
    let mut tagged = client_segment(40010, flags::SYN);
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
    vec![
        client_segment(40001, flags::SYN),
        arp_request,
        client_segment(40001, flags::ACK),
        eth(
            DIR_MAC[0],
            CLIENT_MAC,
            ethernet::ETHERTYPE_IPV4,
            &tcp((CIP, 40001), (VIP, 80), flags::ACK | flags::PSH, b"GET /"),
        ),
        client_segment(40002, flags::ACK), // no connection
        foreign_mac,
        tagged,
        vec![0u8; 9], // runt
        eth(
            DIR_MAC[0],
            CLIENT_MAC,
            ethernet::ETHERTYPE_IPV4,
            &udp((CIP, 5000), (VIP, 53), b"query"),
        ),
        client_segment(40003, flags::SYN),
        // A reply to a local port of the other worker: handed over.
        eth(
            DIR_MAC[1],
            RS1_MAC,
            ethernet::ETHERTYPE_IPV4,
            &tcp((RS1, 80), (LIP, 1025), flags::ACK, b""),
        ),
    ]
}

fn two_workers() -> Vec<Worker> {
    workers_sharing(CONFIG, 2)
}

#[test]
fn a_burst_gets_the_verdicts_of_its_frames_one_at_a_time() {
    let frames = mixed_burst();
    let now = secs(1);

    let mut alone = two_workers();
    let one_by_one: Vec<(Verdict, Vec<u8>)> = frames
        .iter()
        .map(|f| {
            let port = if f.get(..6) == Some(&DIR_MAC[1].0[..]) {
                SERVER
            } else {
                CLIENT
            };
            run(&mut alone[0], now, port, f.clone())
        })
        .collect();

    // The same frames arriving on their ports as two bursts (client, server).
    let mut burst = two_workers();
    let (client, server): (Vec<_>, Vec<_>) = frames
        .iter()
        .enumerate()
        .partition(|(_, f)| f.get(..6) != Some(&DIR_MAC[1].0[..]));
    for (port, part) in [(CLIENT, client), (SERVER, server)] {
        let bytes: Vec<Vec<u8>> = part.iter().map(|(_, f)| (*f).clone()).collect();
        let mut frames = Frames::new(&bytes);
        let mut verdicts = vec![Verdict::Consumed; bytes.len()];
        burst[0].process_burst(now, port, &mut frames, &mut verdicts);
        for (k, (i, _)) in part.iter().enumerate() {
            assert_eq!(verdicts[k], one_by_one[*i].0, "frame {i}");
            assert_eq!(frames.bytes(k), &one_by_one[*i].1[..], "frame {i} bytes");
        }
    }
    let expected = [
        Verdict::Transmit(SERVER),
        Verdict::Transmit(CLIENT),
        Verdict::Transmit(SERVER),
        Verdict::Transmit(SERVER),
        Verdict::Drop(DropReason::NoConnection),
        Verdict::Drop(DropReason::ForeignMac),
        Verdict::Drop(DropReason::UnknownVlan),
        Verdict::Drop(DropReason::Malformed),
        Verdict::Transmit(SERVER),
        Verdict::Transmit(SERVER),
        Verdict::Redirect(lb_core::ids::WorkerId(1)),
    ];
    let verdicts: Vec<Verdict> = one_by_one.iter().map(|(v, _)| *v).collect();
    assert_eq!(verdicts, expected);
    let (a, b) = (alone[0].counters(), burst[0].counters());
    assert_eq!(
        (a.rx_packets.get(), a.rx_bytes.get(), a.conns_created.get()),
        (b.rx_packets.get(), b.rx_bytes.get(), b.conns_created.get())
    );
    assert_eq!(
        a.drops.iter().collect::<Vec<_>>(),
        b.drops.iter().collect::<Vec<_>>()
    );
}

#[test]
fn bursts_longer_than_the_pipeline_are_handled_in_slices() {
    let mut w = worker_with("");
    let frames: Vec<Vec<u8>> = (0..150u16)
        .map(|i| client_segment(41000 + i, flags::SYN))
        .collect();
    let mut burst = Frames::new(&frames);
    let mut verdicts = vec![Verdict::Consumed; frames.len()];
    w.process_burst(secs(1), CLIENT, &mut burst, &mut verdicts);
    assert!(verdicts.iter().all(|v| *v == Verdict::Transmit(SERVER)));
    assert_eq!(w.counters().conns_created.get(), 150);
}

//! Smoke test of the safe DPDK layer against the real EAL, with a `net_ring`
//! vdev: without `nodeaction` arguments its TX queue `i` feeds its own RX queue
//! `i` (one in-process ring per queue pair), so a port is its own loopback.
//!
//! `rte_eal_init` runs once per process, so everything is one `#[test]`.

use std::path::PathBuf;

use lb_core::frame::ResizeError;
use lb_dataplane::dpdk::{
    lcore_id, port_count, rdtsc, register_thread, socket_id, spsc, tsc_hz, unregister_thread,
    DpdkError, Eal, Mbuf, MbufArray, Mempool, Port, PortConfig, BURST, DEFAULT_DATA_ROOM,
    PKTMBUF_HEADROOM,
};

/// Removes the EAL's runtime directory for our file prefix, even on panic.
struct RuntimeDirGuard(PathBuf);

impl Drop for RuntimeDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A 60-byte Ethernet/IPv4-looking frame addressed to `dst`.
/// Where `test_frame` puts its tag (the last byte of the source MAC).
const ETH_TAG_AT: usize = 11;

fn test_frame(dst: [u8; 6], tag: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, tag]);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend((0..46u8).map(|i| i ^ tag));
    f
}

/// Allocates an mbuf and writes `bytes` into it through `with_frame`.
fn build(pool: &Mempool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc().expect("pool has mbufs");
    assert!(m.is_empty());
    assert!(m.is_contiguous());
    assert_eq!(m.headroom(), PKTMBUF_HEADROOM);
    m.with_frame(|f| {
        assert_eq!(f.head(), PKTMBUF_HEADROOM);
        f.set_len(bytes.len()).unwrap();
        f.data_mut().copy_from_slice(bytes);
    });
    assert_eq!(m.data(), bytes);
    assert_eq!(m.pkt_len() as usize, bytes.len());
    m
}

#[test]
fn ring_loopback_end_to_end() {
    let prefix = format!("dpdk-smoke-{}", std::process::id());
    let _dir = RuntimeDirGuard(PathBuf::from("/var/run/dpdk").join(&prefix));
    let args: Vec<String> = [
        "-l",
        "0",
        "--no-huge",
        "-m",
        "256",
        "--file-prefix",
        &prefix,
        "--no-pci",
        "--vdev",
        "net_ring0",
        "--log-level",
        "*:warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    // Nothing works before the EAL.
    assert_eq!(port_count(), 0);
    assert_eq!(
        Mempool::new("early", 63, 0, DEFAULT_DATA_ROOM, -1).unwrap_err(),
        DpdkError::EalNotRunning
    );

    let eal = Eal::init(&args).expect("rte_eal_init");
    // Once per process.
    let again = Eal::init(&args).unwrap_err();
    assert_eq!(
        again,
        DpdkError::EalInit {
            errno: libc::EALREADY
        },
        "{again}"
    );

    assert!(tsc_hz() > 0);
    let t0 = rdtsc();
    assert!(rdtsc() >= t0);
    // The thread that ran rte_eal_init is the main lcore.
    assert_eq!(lcore_id(), Some(0));

    assert!(port_count() >= 1);
    let port_id = Port::by_name("net_ring0").expect("net_ring0 probed");
    assert!(matches!(
        Port::by_name("net_nothing9"),
        Err(DpdkError::PortNotFound { .. })
    ));

    let pool = Mempool::new("smoke_pool", 2047, 32, DEFAULT_DATA_ROOM, socket_id()).expect("pool");
    assert_eq!(pool.in_use(), 0);

    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rx_desc: 512,
        tx_desc: 512,
        mtu: None,
        rss: true,
    };
    let mut port = Port::configure(port_id, cfg, &pool).expect("configure net_ring0");
    assert_eq!(port.driver(), "net_ring");
    // net_ring has no RSS: the hash types are clamped away instead of failing.
    assert_eq!(port.rss_hf(), 0);
    assert!(matches!(
        Port::configure(port_id, cfg, &pool),
        Err(DpdkError::PortInUse { .. })
    ));
    assert!(port.link().expect("link").up);
    let mac = port.mac();

    {
        let mut rxq0 = port.rx_queue(0).unwrap();
        let mut txq0 = port.tx_queue(0).unwrap();
        let mut rxq1 = port.rx_queue(1).unwrap();
        let mut txq1 = port.tx_queue(1).unwrap();
        assert!(matches!(
            port.rx_queue(0),
            Err(DpdkError::QueueInUse { .. })
        ));
        assert!(matches!(
            port.tx_queue(2),
            Err(DpdkError::NoSuchQueue { count: 2, .. })
        ));

        // --- One frame through queue 0, rewritten in place before sending. ---
        let frame = test_frame(mac, 1);
        let mut m = build(&pool, &frame);
        // Open 4 bytes after the Ethernet header by moving the header forward:
        // data_off must shrink by 4 and both lengths grow by 4.
        m.with_frame(|f| {
            f.insert_gap_front(12, 4).unwrap();
            f.data_mut()[12..16].copy_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        });
        assert_eq!(m.headroom(), PKTMBUF_HEADROOM - 4);
        assert_eq!((m.len(), m.pkt_len()), (64, 64));
        let mut expected = frame[..12].to_vec();
        expected.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        expected.extend_from_slice(&frame[12..]);
        assert_eq!(m.data(), &expected[..]);
        // Growing past the buffer fails and leaves the mbuf alone.
        assert_eq!(
            m.set_len(usize::from(DEFAULT_DATA_ROOM)),
            Err(ResizeError::NoTailroom)
        );
        assert_eq!(m.len(), 64);

        let mut tx = MbufArray::new();
        tx.push(m).unwrap();
        assert_eq!(pool.in_use(), 1);
        assert_eq!(txq0.tx_burst(&mut tx), (1, 0));
        assert!(tx.is_empty());

        let mut rx = MbufArray::new();
        assert_eq!(
            rxq1.rx_burst(&mut rx),
            0,
            "queue 1 must not see queue 0's frame"
        );
        assert_eq!(rxq0.rx_burst(&mut rx), 1);
        {
            let got = &mut rx.as_mut_slice()[0];
            assert!(got.is_contiguous());
            assert_eq!(got.data(), &expected[..]);
            assert_eq!((got.len(), got.pkt_len()), (64, 64));
            // Strip the 4 bytes again, as a worker would before forwarding.
            got.with_frame(|f| {
                f.data_mut().copy_within(0..12, 4);
                f.remove_front(0, 4).unwrap();
            });
            assert_eq!(got.data(), &frame[..]);
            assert_eq!((got.len(), got.pkt_len()), (60, 60));
            assert_eq!(got.headroom(), PKTMBUF_HEADROOM);
        }

        // --- Move it into a TX array and send it back out on queue 1. ---
        for m in rx.drain() {
            tx.push(m).unwrap();
        }
        assert!(rx.is_empty());
        assert_eq!(txq1.tx_burst(&mut tx), (1, 0));
        assert_eq!(rxq0.rx_burst(&mut rx), 0);
        assert_eq!(rxq1.rx_burst(&mut rx), 1);
        let back = rx.pop().unwrap();
        assert_eq!(back.data(), &frame[..]);
        drop(back);
        assert_eq!(pool.in_use(), 0);

        // --- A worker thread (registered non-EAL lcore) owns a TX queue. ---
        std::thread::scope(|s| {
            let pool = &pool;
            let txq = &mut txq1;
            s.spawn(move || {
                assert_eq!(lcore_id(), None);
                register_thread().expect("rte_thread_register");
                assert!(lcore_id().is_some_and(|id| id != 0));
                let mut tx = MbufArray::new();
                for tag in 0..4 {
                    tx.push(build(pool, &test_frame(mac, 10 + tag))).unwrap();
                }
                assert_eq!(txq.tx_burst(&mut tx), (4, 0));
                unregister_thread();
                assert_eq!(lcore_id(), None);
            });
        });
        assert_eq!(rxq1.rx_burst(&mut rx), 4);
        for (i, m) in rx.as_slice().iter().enumerate() {
            assert_eq!(m.data(), &test_frame(mac, 10 + i as u8)[..]);
        }
        rx.clear();

        let stats = port.stats().expect("stats");
        assert_eq!((stats.ipackets, stats.opackets), (6, 6), "{stats:?}");

        // --- Overflow the 1024-slot ring: tx_burst frees what is refused. ---
        let mut sent = 0;
        let mut dropped = 0;
        for _ in 0..33 {
            assert_eq!(pool.alloc_bulk(&mut tx), BURST);
            for m in tx.as_mut_slice() {
                m.set_len(60).unwrap();
            }
            let (s, d) = txq0.tx_burst(&mut tx);
            sent += s;
            dropped += d;
        }
        assert_eq!((sent, dropped), (1023, 33));
        assert_eq!(pool.in_use(), 1023, "refused mbufs went back to the pool");
        // try_tx_burst keeps the refused ones for a retry.
        assert_eq!(pool.alloc_bulk(&mut tx), BURST);
        assert_eq!(txq0.try_tx_burst(&mut tx), 0);
        assert_eq!(tx.len(), BURST);
        tx.clear();
        let mut received = 0;
        loop {
            let n = rxq0.rx_burst(&mut rx);
            if n == 0 {
                break;
            }
            received += n;
            assert!(rx.as_slice().iter().all(|m| m.len() == 60));
            rx.clear();
        }
        assert_eq!(received, 1023);
        assert_eq!(pool.in_use(), 0);

        let stats = port.stats().expect("stats");
        assert_eq!(
            (stats.ipackets, stats.opackets),
            (6 + 1023, 6 + 1023),
            "{stats:?}"
        );
        // (net_ring counts neither bytes nor refused packets: obytes, ibytes and
        // oerrors stay 0 on this driver.)
        let xstats = port.xstats().expect("xstats");
        let get = |name: &str| xstats.iter().find(|(n, _)| n == name).map(|&(_, v)| v);
        assert_eq!(get("rx_good_packets"), Some(6 + 1023), "{xstats:?}");
        assert_eq!(get("tx_good_packets"), Some(6 + 1023), "{xstats:?}");
    }

    // Queue handles are gone, so the port can be stopped; a stopped port hands
    // out no queues.
    port.stop().expect("stop");
    assert!(matches!(
        port.rx_queue(0),
        Err(DpdkError::PortStopped { .. })
    ));
    port.start().expect("start");
    drop(port);

    ring_hand_off(&pool);

    // The vdev port is closed (released) now.
    assert!(Port::by_name("net_ring0").is_err());
    drop(pool);
    drop(eal);
    assert_eq!(port_count(), 0);
    assert_eq!(
        Mempool::new("late", 63, 0, DEFAULT_DATA_ROOM, -1).unwrap_err(),
        DpdkError::EalNotRunning
    );
}

/// The SPSC ring between two workers: frames go in order from one thread to
/// another, a full ring refuses the rest without losing or duplicating any, and
/// frames left in a ring are freed when both ends are gone.
fn ring_hand_off(pool: &Mempool) {
    let before = pool.in_use();
    let (mut producer, mut consumer) = spsc("smoke_ring", 64, socket_id()).expect("ring");
    let sender_pool = pool.clone();
    let sender = std::thread::spawn(move || {
        register_thread().expect("register");
        // 100 frames into a 64-slot ring (63 usable) that nobody reads yet.
        let mut refused = 0;
        for tag in 0..100u8 {
            let mut burst = MbufArray::new();
            assert!(burst
                .push(build(&sender_pool, &test_frame([2; 6], tag)))
                .is_ok());
            if producer.enqueue_burst(&mut burst) == 0 {
                refused += 1;
                burst.clear();
            }
        }
        unregister_thread();
        (refused, producer)
    });
    let (refused, producer) = sender.join().expect("sender thread");
    assert_eq!(refused, 100 - 63);
    assert_eq!(
        pool.in_use(),
        before + 63,
        "refused frames went back to the pool"
    );
    let mut got = Vec::new();
    let mut burst = MbufArray::new();
    while consumer.dequeue_burst(&mut burst) > 0 {
        for mbuf in burst.drain() {
            got.push(mbuf.data()[ETH_TAG_AT]);
        }
    }
    assert_eq!(
        got,
        (0..63).collect::<Vec<u8>>(),
        "in order, none lost or doubled"
    );
    // Frames still queued when both ends go are freed.
    let mut burst = MbufArray::new();
    assert!(burst.push(build(pool, &test_frame([2; 6], 7))).is_ok());
    let mut producer = producer;
    assert_eq!(producer.enqueue_burst(&mut burst), 1);
    drop(producer);
    drop(consumer);
    assert_eq!(pool.in_use(), before);
}

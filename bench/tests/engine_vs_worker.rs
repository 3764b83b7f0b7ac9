//! lb-pktgen's traffic engine against an in-process `lb_core` worker configured
//! with `config/examples/bench-fullnat.yaml`, frames moved by hand: every mode must run
//! full conversations through the FullNAT path with nothing invalid and nothing
//! lost, and a device that damages frames must be caught.

use std::collections::VecDeque;

use lb_bench::fixtures;
use lb_bench::plan::Plan;
use lb_bench::results::RunResult;
use lb_bench::traffic::{Action, Dut, Engine, Link, Mode, Options};
use lb_config::Config;
use lb_core::frame::Frame;
use lb_core::ids::PortId;
use lb_core::time::Instant;
use lb_core::wire::ipv4::{PROTO_TCP, PROTO_UDP};
use lb_core::worker::{Verdict, Worker};

const HEAD: usize = 128;
const ROOM: usize = 2048;

fn bench_config() -> Config {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/examples/bench-fullnat.yaml"
    );
    let text = std::fs::read_to_string(path).expect("config/examples/bench-fullnat.yaml");
    Config::from_yaml(&text).expect("valid bench config")
}

/// A frame in flight: its buffer and length (head at HEAD).
struct Wire {
    link: Link,
    buf: Vec<u8>,
    len: usize,
}

/// What sits between the links.
enum Device {
    Director(Box<Worker>),
    /// Forwards client ↔ server unchanged.
    Passthrough,
    /// A director that flips one payload bit of every `n`-th frame it forwards.
    Corrupting(Box<Worker>, u64, u64),
}

fn link_of(port: PortId) -> Link {
    if port.0 == 0 {
        Link::Client
    } else {
        Link::Server
    }
}

/// Runs `opts` to the end; the clock advances 1 µs per loop (hz = 1e9).
fn run(opts: Options, mut device: Device) -> RunResult {
    let config = bench_config();
    let plan = Plan::from_config(&config).unwrap();
    let mut now = 1_000u64;
    let mut engine = Engine::new(opts, plan, 1_000_000_000, now).unwrap();
    let mut to_dut: VecDeque<Wire> = VecDeque::new();
    let mut to_gen: VecDeque<Wire> = VecDeque::new();
    let mut loops = 0u64;
    while !engine.done() {
        loops += 1;
        assert!(loops < 20_000_000, "run does not end");
        now += 1_000;
        engine.tick(now);
        for _ in 0..engine.wanted(now, 32) {
            let mut buf = vec![0u8; ROOM];
            let mut frame = Frame::new(&mut buf, HEAD, 0);
            if let Some(link) = engine.generate(now, &mut frame) {
                let len = frame.len();
                to_dut.push_back(Wire { link, buf, len });
            }
        }
        while let Some(mut w) = to_dut.pop_front() {
            let port = PortId(w.link as u16);
            let mut frame = Frame::new(&mut w.buf, HEAD, w.len);
            let out = match &mut device {
                Device::Passthrough => Some(PortId(1 - port.0)),
                Device::Director(worker) | Device::Corrupting(worker, _, _) => {
                    match worker.process(Instant(now), port, &mut frame) {
                        Verdict::Transmit(p) => Some(p),
                        _ => None,
                    }
                }
            };
            let len = frame.len();
            if let Some(p) = out {
                if let Device::Corrupting(_, every, seen) = &mut device {
                    *seen += 1;
                    if *seen % *every == 0 {
                        w.buf[HEAD + len - 1] ^= 0x40;
                    }
                }
                to_gen.push_back(Wire {
                    link: link_of(p),
                    buf: w.buf,
                    len,
                });
            }
        }
        if let Device::Director(worker) | Device::Corrupting(worker, _, _) = &mut device {
            while worker.has_pending_transmit() {
                let mut buf = vec![0u8; ROOM];
                let mut frame = Frame::new(&mut buf, HEAD, 0);
                if let Some(p) = worker.poll_transmit(Instant(now), &mut frame) {
                    let len = frame.len();
                    to_gen.push_back(Wire {
                        link: link_of(p),
                        buf,
                        len,
                    });
                }
            }
            worker.poll(Instant(now));
        }
        while let Some(mut w) = to_gen.pop_front() {
            let mut frame = Frame::new(&mut w.buf, HEAD, w.len);
            if let Action::Send(link) = engine.handle(w.link, now, &mut frame) {
                let len = frame.len();
                to_dut.push_back(Wire {
                    link,
                    buf: w.buf,
                    len,
                });
            }
        }
    }
    let dut = match device {
        Device::Passthrough => "passthrough",
        _ => "lb-director",
    };
    let r = RunResult::from_engine(&engine, "test", dut);
    eprintln!("{}", r.table());
    r
}

fn director() -> Device {
    Device::Director(Box::new(fixtures::worker(&bench_config(), 1 << 16)))
}

fn opts(mode: Mode, proto: u8) -> Options {
    Options {
        mode,
        proto,
        flows: 500,
        clients: 16,
        duration: 0.002,
        warmup_timeout: 0.05,
        drain: 0.001,
        window: 64,
        conn_timeout: 0.01,
        sample_interval: 0.0005,
        ..Options::default()
    }
}

fn assert_clean(r: &RunResult) {
    assert_eq!(r.invalid_total, 0, "{:?}", r.invalid);
    assert_eq!(r.error, None);
    assert_eq!(r.stale, 0);
    assert_eq!(r.tx_dropped, 0);
}

#[test]
fn throughput_udp_and_tcp_through_the_director() {
    for proto in [PROTO_UDP, PROTO_TCP] {
        let r = run(opts(Mode::Throughput, proto), director());
        assert_clean(&r);
        assert_eq!(r.warmup.failed, 0);
        assert_eq!(r.warmup.established, 500);
        assert!(r.tx > 1000, "{}", r.tx);
        assert_eq!(r.rx, r.tx);
        assert_eq!(r.lost, 0);
        assert!(r.timeline.len() >= 3);
    }
}

#[test]
fn throughput_with_echoes_counts_both_directions() {
    let mut o = opts(Mode::Throughput, PROTO_TCP);
    o.replies = true;
    o.size = 128;
    let r = run(o, director());
    assert_clean(&r);
    assert_eq!(r.rx, 2 * r.tx);
    assert_eq!(r.lost, 0);
}

#[test]
fn paced_latency_run_records_every_frame() {
    let mut o = opts(Mode::Latency, PROTO_UDP);
    o.timestamps = true;
    o.rate = 2_000_000.0;
    let r = run(o, director());
    assert_clean(&r);
    let l = r.latency.as_ref().unwrap();
    assert_eq!(l.samples, r.tx);
    // 2 Mpps for 2 ms.
    assert!((3900..=4100).contains(&r.tx), "{}", r.tx);
    // Frames are handled at the tick they are built (zero latency here).
    assert!(l.p999 >= l.p50);
    // TCP needs 72-byte frames for a timestamp.
    let mut o = opts(Mode::Latency, PROTO_TCP);
    o.timestamps = true;
    let plan = Plan::from_config(&bench_config()).unwrap();
    assert!(Engine::new(o.clone(), plan.clone(), 1_000_000_000, 0).is_err());
    o.size = 72;
    assert!(Engine::new(o, plan, 1_000_000_000, 0).is_ok());
}

#[test]
fn connection_rate_completes_full_connections() {
    let r = run(opts(Mode::ConnectionRate, PROTO_TCP), director());
    assert_clean(&r);
    let c = r.cps.as_ref().unwrap();
    assert!(c.completed > 100, "{c:?}");
    assert_eq!(c.failed, 0);
    assert_eq!(c.completed, c.started);
}

#[test]
fn passthrough_expects_unchanged_frames() {
    for mode in [Mode::Throughput, Mode::ConnectionRate] {
        let mut o = opts(mode, PROTO_TCP);
        o.dut = Dut::Passthrough;
        let r = run(o, Device::Passthrough);
        assert_clean(&r);
        if mode == Mode::Throughput {
            assert_eq!(r.rx, r.tx);
        } else {
            assert!(r.cps.unwrap().completed > 100);
        }
    }
    // The director never hands back what a pass-through would: frames addressed
    // for a pass-through are refused at its ingress, and any it forwards are
    // rewritten, so every returned frame is invalid to a pass-through check.
    let mut o = opts(Mode::Throughput, PROTO_UDP);
    o.dut = Dut::Passthrough;
    let r = run(o, director());
    assert_eq!(r.rx, r.invalid_total);
}

#[test]
fn damaged_frames_are_counted_invalid() {
    let worker = Box::new(fixtures::worker(&bench_config(), 1 << 16));
    let r = run(
        opts(Mode::Throughput, PROTO_UDP),
        Device::Corrupting(worker, 10, 0),
    );
    assert!(r.invalid.l4_checksum > 0, "{:?}", r.invalid);
    assert_eq!(r.invalid_total, r.invalid.l4_checksum);
}

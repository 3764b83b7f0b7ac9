//! Whatever arrives, the worker answers with a verdict and never panics: random
//! bytes, and valid frames with random bytes changed, cut or appended, one at a
//! time and in bursts.

use lb_core::wire::tcp::flags;
use lb_core::worker::Verdict;
use proptest::prelude::*;

mod common;
use common::*;

/// A few frames the director handles, to mutate.
fn seeds() -> Vec<Vec<u8>> {
    vec![
        client_segment(40000, flags::SYN),
        client_segment(40000, flags::ACK),
        tcp_frame_from_server(),
        eth(
            DIR_MAC[0],
            CLIENT_MAC,
            lb_core::wire::ethernet::ETHERTYPE_IPV4,
            &udp((CIP, 5000), (VIP, 53), b"query"),
        ),
    ]
}

fn tcp_frame_from_server() -> Vec<u8> {
    eth(
        DIR_MAC[1],
        RS1_MAC,
        lb_core::wire::ethernet::ETHERTYPE_IPV4,
        &tcp((RS1, 80), (LIP, 1025), flags::SYN | flags::ACK, b""),
    )
}

/// A frame: a seed with edits, or random bytes.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    let edited = (
        0..seeds().len(),
        proptest::collection::vec((any::<u16>(), any::<u8>()), 0..6),
        proptest::option::of(0usize..80),
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(seed, edits, cut, tail)| {
            let mut f = seeds()[seed].clone();
            for (at, byte) in edits {
                let i = usize::from(at) % f.len();
                f[i] = byte;
            }
            if let Some(cut) = cut {
                f.truncate(cut.min(f.len()));
            }
            f.extend(tail);
            f
        });
    prop_oneof![edited, proptest::collection::vec(any::<u8>(), 0..120)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Neither crashes, and a burst gives what its frames get one at a time
    /// (verdicts and the bytes that leave).
    #[test]
    fn every_frame_gets_a_verdict(
        frames in proptest::collection::vec(frame(), 1..40),
        on_server in any::<bool>(),
    ) {
        let port = if on_server { SERVER } else { CLIENT };
        let mut alone = worker_with("");
        let one_by_one: Vec<(Verdict, Vec<u8>)> = frames
            .iter()
            .map(|f| run(&mut alone, secs(1), port, f.clone()))
            .collect();
        let mut burst = worker_with("");
        let mut frames_in = Frames::new(&frames);
        let mut verdicts = vec![Verdict::Consumed; frames.len()];
        burst.process_burst(secs(1), port, &mut frames_in, &mut verdicts);
        for (i, (verdict, bytes)) in one_by_one.iter().enumerate() {
            prop_assert_eq!(verdicts[i], *verdict, "frame {}", i);
            if matches!(verdict, Verdict::Transmit(_)) {
                prop_assert_eq!(frames_in.bytes(i), &bytes[..], "frame {}", i);
            }
        }
        alone.poll(secs(100));
        burst.poll(secs(100));
    }
}

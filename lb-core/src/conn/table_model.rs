//! The connection table against a `HashMap` model: random sequences of inserts,
//! lookups (one at a time and in bursts), removals, deadline changes and expiry,
//! with the keyed hash and with degenerate ones that crowd every key into one
//! bucket pair, one signature, one primary bucket or a few buckets (full
//! buckets, chains of displacements, the stash).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::state::TcpState;
use super::table::{Conn, ConnTable, InsertError, Side, SidePorts, XmitState};
use super::window::TcpWindow;
use crate::flow::FlowKey;
use crate::ids::{RealServerId, ServiceId};
use crate::service::ForwardMode;
use crate::time::Instant;

const CAPACITY: usize = 24;
const PORTS: u16 = 40;
const MS: u64 = 1_000_000;

#[derive(Clone, Debug)]
enum Op {
    Insert {
        cport: u16,
        lport: u16,
        two_keys: bool,
        life_ms: u64,
    },
    Remove(usize),
    SetExpires(usize, u64),
    Lookup(u16, u16),
    Expire {
        advance_ms: u64,
        budget: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..PORTS, 0..PORTS, any::<bool>(), 1..3000u64).prop_map(
            |(cport, lport, two_keys, life_ms)| Op::Insert { cport, lport, two_keys, life_ms }
        ),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => (any::<usize>(), 1..3000u64).prop_map(|(at, ms)| Op::SetExpires(at, ms)),
        2 => (0..PORTS, 0..PORTS).prop_map(|(c, l)| Op::Lookup(c, l)),
        1 => (0..1500u64, 0..8usize).prop_map(|(advance_ms, budget)| Op::Expire { advance_ms, budget }),
    ]
}

/// The hashes a table may use: `None` is the keyed one.
fn hashes() -> impl Strategy<Value = Option<fn(&FlowKey) -> u64>> {
    fn one_bucket_pair(_: &FlowKey) -> u64 {
        0x5a5a_0000_0000_0007
    }
    fn one_signature(k: &FlowKey) -> u64 {
        0xbeef_0000_0000_0000 | u64::from(k.sport % 5) | (u64::from(k.src == ip(11)) << 3)
    }
    fn few_buckets(k: &FlowKey) -> u64 {
        (u64::from(k.sport) << 48) | u64::from(k.sport % 3)
    }
    fn one_primary(k: &FlowKey) -> u64 {
        (u64::from(k.sport) << 48) | (u64::from(k.src == ip(11)) << 56)
    }
    prop_oneof![
        Just(None),
        Just(Some(one_primary as fn(&FlowKey) -> u64)),
        Just(Some(one_bucket_pair as fn(&FlowKey) -> u64)),
        Just(Some(one_signature as fn(&FlowKey) -> u64)),
        Just(Some(few_buckets as fn(&FlowKey) -> u64)),
    ]
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

/// A UDP connection: FullNAT (two keys) or DR (one).
pub(super) fn conn(cport: u16, lport: u16, two_keys: bool, expires: Instant) -> Conn {
    Conn {
        proto: 17,
        forward: if two_keys {
            ForwardMode::FullNat
        } else {
            ForwardMode::Dr
        },
        state: TcpState::Established,
        output_seen: false,
        client: (ip(1), cport),
        virt: (ip(100), 80),
        local: (ip(200), lport),
        dest: (ip(11), 8080),
        service: (ServiceId(0), 0),
        real_server: (RealServerId(0), 0),
        expires,
        xmit: XmitState::default(),
        sides: SidePorts::default(),
        window: TcpWindow::default(),
    }
}

/// What the table should hold: live connections by slot, and each key's slot
/// and side.
#[derive(Default)]
struct Model {
    conns: HashMap<u32, Conn>,
    keys: HashMap<FlowKey, (u32, Side)>,
}

impl Model {
    fn keys_of(conn: &Conn) -> Vec<(FlowKey, Side)> {
        let mut keys = vec![(conn.client_key(), Side::Client)];
        if conn.replies_through_director() {
            keys.push((conn.server_key(), Side::Server));
        }
        keys
    }

    fn drop_slot(&mut self, idx: u32) -> Conn {
        let conn = self.conns.remove(&idx).expect("live in the model");
        for (key, _) in Self::keys_of(&conn) {
            self.keys.remove(&key);
        }
        conn
    }

    fn nth_slot(&self, at: usize) -> Option<u32> {
        let mut slots: Vec<u32> = self.conns.keys().copied().collect();
        slots.sort_unstable();
        (!slots.is_empty()).then(|| slots[at % slots.len()])
    }
}

fn probe_keys(model: &Model) -> Vec<FlowKey> {
    let mut keys: Vec<FlowKey> = model.keys.keys().copied().collect();
    // Absent keys too: every port on both sides, and a reversed tuple.
    for port in 0..PORTS {
        keys.push(conn(port, port, true, Instant(0)).client_key());
        keys.push(conn(port, port, true, Instant(0)).server_key());
    }
    keys.push(conn(1, 1, true, Instant(0)).client_key().reversed());
    keys
}

fn check(table: &ConnTable, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(table.len(), model.conns.len());
    let keys = probe_keys(model);
    let mut burst = vec![None; keys.len()];
    table.lookup_burst(&keys, &mut burst);
    for (key, &from_burst) in keys.iter().zip(&burst) {
        let expected = model.keys.get(key).copied();
        prop_assert_eq!(table.lookup(key), expected, "lookup {:?}", key);
        prop_assert_eq!(from_burst, expected, "burst lookup {:?}", key);
    }
    for (&idx, conn) in &model.conns {
        prop_assert_eq!(table.get(idx), conn);
    }
    Ok(())
}

fn run(hash: Option<fn(&FlowKey) -> u64>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut now = Instant(0);
    let mut table = match hash {
        Some(hash) => ConnTable::with_hash(CAPACITY, now, hash),
        None => ConnTable::new(CAPACITY, 99, now),
    };
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Insert {
                cport,
                lport,
                two_keys,
                life_ms,
            } => {
                let c = conn(cport, lport, two_keys, Instant(now.0 + life_ms * MS));
                let keys = Model::keys_of(&c);
                let got = table.insert(c.clone());
                if keys.iter().any(|(k, _)| model.keys.contains_key(k)) {
                    prop_assert_eq!(got, Err(InsertError::Exists));
                } else if model.conns.len() == CAPACITY {
                    prop_assert_eq!(got, Err(InsertError::Full));
                } else {
                    let idx = got.expect("room for the connection");
                    prop_assert!(
                        !model.conns.contains_key(&idx),
                        "slot {} reused while live",
                        idx
                    );
                    for (key, side) in keys {
                        model.keys.insert(key, (idx, side));
                    }
                    model.conns.insert(idx, c);
                }
            }
            Op::Remove(at) => {
                if let Some(idx) = model.nth_slot(at) {
                    let expected = model.drop_slot(idx);
                    prop_assert_eq!(table.remove(idx), expected);
                }
            }
            Op::SetExpires(at, ms) => {
                if let Some(idx) = model.nth_slot(at) {
                    let expires = Instant(now.0 + ms * MS);
                    table.set_expires(idx, expires);
                    model.conns.get_mut(&idx).expect("live").expires = expires;
                }
            }
            Op::Lookup(cport, lport) => {
                for key in [
                    conn(cport, lport, true, now).client_key(),
                    conn(cport, lport, true, now).server_key(),
                ] {
                    prop_assert_eq!(table.lookup(&key), model.keys.get(&key).copied());
                }
            }
            Op::Expire { advance_ms, budget } => {
                now = Instant(now.0 + advance_ms * MS);
                let mut gone = Vec::new();
                table.expire(now, budget, |c| gone.push(c.clone()));
                for conn in gone {
                    prop_assert!(conn.expires <= now, "expired early: {:?}", conn);
                    let (idx, _) = model.keys[&conn.client_key()];
                    prop_assert_eq!(model.drop_slot(idx), conn);
                }
            }
        }
        check(&table, &model)?;
    }
    // Everything goes once its deadline has passed.
    let end = Instant(now.0 + 10_000 * MS);
    let mut gone = 0;
    while table.expire(end, usize::MAX, |_| gone += 1) > 0 {}
    prop_assert_eq!(gone, model.conns.len());
    prop_assert!(table.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_table_behaves_as_a_map(hash in hashes(), ops in prop::collection::vec(op(), 1..120)) {
        run(hash, ops)?;
    }
}

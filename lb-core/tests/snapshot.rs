//! Snapshots built from configurations: lookups, and what an edit keeps (slot
//! identities, counters, the scheduler's place in its rotation).

use std::net::IpAddr;
use std::sync::Arc;

use lb_config::{build_snapshot, Config};
use lb_core::flow::FlowKey;
use lb_core::ids::{PortId, WorkerId};
use lb_core::snapshot::{LocalKind, Snapshot};

const CONFIG: &str = r#"
ports:
  - { name: client, device: d0, address: 10.0.1.1/24 }
  - { name: server, device: d1, address: 10.0.2.1/24 }
local_addresses:
  - { address: 10.0.2.100, port: server }
services:
  - address: 10.0.1.100
    port: 80
    protocol: tcp
    scheduler: rr
    real_servers:
      - { address: 10.0.2.11 }
      - { address: 10.0.2.12, port: 8080 }
"#;

fn build(text: &str, previous: Option<&Snapshot>) -> Snapshot {
    build_snapshot(&Config::from_yaml(text).unwrap(), previous, 2).unwrap()
}

#[test]
fn an_edited_service_keeps_its_place_in_the_rotation() {
    let first = build(CONFIG, None);
    let vip: IpAddr = "10.0.1.100".parse().unwrap();
    let flow = FlowKey::v4(
        6,
        "10.0.1.2".parse().unwrap(),
        1,
        "10.0.1.100".parse().unwrap(),
        80,
    );
    let svc = first.service(6, vip, 80).unwrap();
    let w = WorkerId(1);
    assert_eq!(svc.scheduler.pick(w, &svc.real_servers, &flow), Some(0));
    // A server is added: rr continues with the second server, not the first.
    let edited = CONFIG.replace(
        "      - { address: 10.0.2.12, port: 8080 }",
        "      - { address: 10.0.2.12, port: 8080 }\n      - { address: 10.0.2.13 }",
    );
    let second = build(&edited, Some(&first));
    let svc = second.service(6, vip, 80).unwrap();
    let picks: Vec<_> = (0..3)
        .map(|_| svc.scheduler.pick(w, &svc.real_servers, &flow).unwrap())
        .collect();
    assert_eq!(picks, [1, 2, 0]);
    // Worker 0 had not picked yet: it still starts at the first server.
    assert_eq!(
        svc.scheduler.pick(WorkerId(0), &svc.real_servers, &flow),
        Some(0)
    );
}

#[test]
fn indexes_services_and_local_addresses() {
    let s = build(CONFIG, None);
    let vip: IpAddr = "10.0.1.100".parse().unwrap();
    let svc = s.service(6, vip, 80).unwrap();
    assert_eq!(svc.real_servers.len(), 2);
    assert_eq!(svc.real_servers[1].port, 8080);
    assert_eq!(svc.real_servers[0].port, 80);
    assert!(s.service(17, vip, 80).is_none());
    assert_eq!(s.local_kind(vip), Some(LocalKind::Vip));
    assert_eq!(
        s.local_kind("10.0.2.1".parse().unwrap()),
        Some(LocalKind::Port(PortId(1)))
    );
    assert_eq!(
        s.local_kind("10.0.2.100".parse().unwrap()),
        Some(LocalKind::LocalAddress)
    );
    let d = &svc.real_servers[0];
    assert!(Arc::ptr_eq(s.real_server(d.id, d.serial).unwrap(), d));
    assert!(s.real_server(d.id, d.serial + 1000).is_none());
}

#[test]
fn edits_keep_identity_and_counters_of_what_stays() {
    let first = build(CONFIG, None);
    let vip: IpAddr = "10.0.1.100".parse().unwrap();
    let kept = first.service(6, vip, 80).unwrap().real_servers[0].clone();
    let removed = first.service(6, vip, 80).unwrap().real_servers[1].clone();
    let edited = CONFIG.replace(
        "{ address: 10.0.2.12, port: 8080 }",
        "{ address: 10.0.2.13, weight: 5 }",
    );
    let second = build(&edited, Some(&first));
    assert_eq!(second.generation, first.generation + 1);
    let svc = second.service(6, vip, 80).unwrap();
    let again = &svc.real_servers[0];
    assert_eq!((again.id, again.serial), (kept.id, kept.serial));
    assert!(Arc::ptr_eq(&again.counters, &kept.counters));
    assert!(second.real_server(removed.id, removed.serial).is_none());
    let added = &svc.real_servers[1];
    assert_ne!(
        added.id, removed.id,
        "a freed slot is not reused by the next snapshot"
    );
    // One more snapshot later the freed slot may be reused, with a new serial.
    let third = build(&edited.replace("10.0.2.13", "10.0.2.14"), Some(&second));
    let newest = &third.service(6, vip, 80).unwrap().real_servers[1];
    assert!(third.real_server(removed.id, removed.serial).is_none());
    assert!(third.real_server(added.id, added.serial).is_none());
    assert!(third.real_server(newest.id, newest.serial).is_some());
}

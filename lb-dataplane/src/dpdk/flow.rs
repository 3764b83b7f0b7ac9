//! Hardware steering of FullNAT replies with `rte_flow`: traffic to a local
//! address whose destination port has `port & mask == q` goes to RX queue `q`, the
//! queue of the worker that owns those ports. Ports whose driver cannot do this
//! (af_packet, tap, most virtual NICs) keep the software path: the worker that
//! receives a reply it does not own hands it over on a ring.

use std::net::Ipv4Addr;

use dpdk_sys as sys;

use super::{DpdkError, Port};

const PROTOCOLS: [sys::rte_flow_item_type; 2] =
    [sys::RTE_FLOW_ITEM_TYPE_TCP, sys::RTE_FLOW_ITEM_TYPE_UDP];

/// One rule's items and action, kept together so the pointers stay valid.
struct Rule {
    attr: sys::rte_flow_attr,
    ip_spec: sys::rte_flow_item_ipv4,
    ip_mask: sys::rte_flow_item_ipv4,
    tcp_spec: sys::rte_flow_item_tcp,
    tcp_mask: sys::rte_flow_item_tcp,
    udp_spec: sys::rte_flow_item_udp,
    udp_mask: sys::rte_flow_item_udp,
    queue: sys::rte_flow_action_queue,
}

impl Rule {
    fn new(lip: Ipv4Addr, mask: u16, queue: u16) -> Box<Rule> {
        // SAFETY: these are plain C structs of integers (and integer unions), for
        // which all-zero is a valid value: "match nothing / no options".
        let mut rule: Box<Rule> = Box::new(unsafe { std::mem::zeroed() });
        rule.attr.set_ingress(1);
        rule.ip_spec.hdr.dst_addr = u32::from(lip).to_be();
        rule.ip_mask.hdr.dst_addr = u32::MAX;
        rule.tcp_spec.hdr.dst_port = queue.to_be();
        rule.tcp_mask.hdr.dst_port = mask.to_be();
        rule.udp_spec.hdr.dst_port = queue.to_be();
        rule.udp_mask.hdr.dst_port = mask.to_be();
        rule.queue.index = queue;
        rule
    }

    fn pattern(&self, l4: sys::rte_flow_item_type) -> [sys::rte_flow_item; 4] {
        let item = |type_, spec: *const std::ffi::c_void, mask: *const std::ffi::c_void| {
            sys::rte_flow_item {
                type_,
                spec,
                last: std::ptr::null(),
                mask,
            }
        };
        let (spec, mask): (*const std::ffi::c_void, *const std::ffi::c_void) =
            if l4 == sys::RTE_FLOW_ITEM_TYPE_TCP {
                (
                    std::ptr::from_ref(&self.tcp_spec).cast(),
                    std::ptr::from_ref(&self.tcp_mask).cast(),
                )
            } else {
                (
                    std::ptr::from_ref(&self.udp_spec).cast(),
                    std::ptr::from_ref(&self.udp_mask).cast(),
                )
            };
        [
            item(
                sys::RTE_FLOW_ITEM_TYPE_ETH,
                std::ptr::null(),
                std::ptr::null(),
            ),
            item(
                sys::RTE_FLOW_ITEM_TYPE_IPV4,
                std::ptr::from_ref(&self.ip_spec).cast(),
                std::ptr::from_ref(&self.ip_mask).cast(),
            ),
            item(l4, spec, mask),
            item(
                sys::RTE_FLOW_ITEM_TYPE_END,
                std::ptr::null(),
                std::ptr::null(),
            ),
        ]
    }

    fn actions(&self) -> [sys::rte_flow_action; 2] {
        [
            sys::rte_flow_action {
                type_: sys::RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: std::ptr::from_ref(&self.queue).cast(),
            },
            sys::rte_flow_action {
                type_: sys::RTE_FLOW_ACTION_TYPE_END,
                conf: std::ptr::null(),
            },
        ]
    }
}

impl Port {
    /// Installs rules sending TCP and UDP to `lip` with `dst_port & mask == q` to
    /// RX queue `q`, for every queue. Every rule is validated first; if the driver
    /// refuses any, nothing is installed and the error says why (the caller then
    /// relies on software steering). Returns the number of rules installed.
    pub fn steer_local_ports(
        &self,
        lip: Ipv4Addr,
        mask: u16,
        queues: u16,
    ) -> Result<usize, DpdkError> {
        let rules: Vec<Box<Rule>> = (0..queues).map(|q| Rule::new(lip, mask, q)).collect();
        for stage in [Stage::Validate, Stage::Create] {
            for rule in &rules {
                for l4 in PROTOCOLS {
                    let pattern = rule.pattern(l4);
                    let actions = rule.actions();
                    // SAFETY: zeroed is a valid rte_flow_error (no message).
                    let mut error: sys::rte_flow_error = unsafe { std::mem::zeroed() };
                    // SAFETY: `self` is a configured port; attr, pattern and actions
                    // point into `rule`, alive for the call; `error` is writable.
                    let ret = unsafe {
                        match stage {
                            Stage::Validate => sys::rte_flow_validate(
                                self.id(),
                                &rule.attr,
                                pattern.as_ptr(),
                                actions.as_ptr(),
                                &mut error,
                            ),
                            Stage::Create => {
                                if sys::rte_flow_create(
                                    self.id(),
                                    &rule.attr,
                                    pattern.as_ptr(),
                                    actions.as_ptr(),
                                    &mut error,
                                )
                                .is_null()
                                {
                                    -1
                                } else {
                                    0
                                }
                            }
                        }
                    };
                    if ret != 0 {
                        if stage == Stage::Create {
                            // SAFETY: removes the rules created so far on this port.
                            unsafe { sys::rte_flow_flush(self.id(), &mut error) };
                        }
                        return Err(DpdkError::PortCall {
                            call: match stage {
                                Stage::Validate => "rte_flow_validate",
                                Stage::Create => "rte_flow_create",
                            },
                            port: self.id(),
                            ret,
                        });
                    }
                }
            }
        }
        Ok(rules.len() * PROTOCOLS.len())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Validate,
    Create,
}

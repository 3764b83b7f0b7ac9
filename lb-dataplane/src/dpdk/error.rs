//! [`DpdkError`]: which DPDK call failed and with what code.

use std::fmt;
use std::io;

/// A failed DPDK call. `errno` fields hold `rte_errno`; `ret` fields hold the
/// call's (negative errno) return value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpdkError {
    /// A string passed to DPDK contained a NUL byte.
    InteriorNul {
        /// What the string was (an EAL argument, a pool or port name).
        what: &'static str,
        /// The offending string.
        value: String,
    },
    /// Too many EAL arguments for a C `int`.
    TooManyArgs,
    /// `rte_eal_init` failed.
    EalInit {
        /// `rte_errno` after the call (`EALREADY` if the EAL was initialised
        /// before: it can be initialised once per process).
        errno: i32,
    },
    /// The EAL is not initialised, or the [`super::Eal`] was dropped.
    EalNotRunning,
    /// `rte_thread_register` failed.
    ThreadRegister {
        /// `rte_errno` after the call.
        errno: i32,
    },
    /// `rte_pktmbuf_pool_create` failed.
    MempoolCreate {
        /// The pool name asked for.
        name: String,
        /// `rte_errno` after the call.
        errno: i32,
    },
    /// `rte_ring_create` failed.
    RingCreate {
        /// The ring name asked for.
        name: String,
        /// `rte_errno` after the call.
        errno: i32,
    },
    /// `rte_eth_dev_get_port_by_name` found no such port.
    PortNotFound {
        /// The device name looked up.
        name: String,
        /// The call's return value.
        ret: i32,
    },
    /// `rte_eth_dev_is_valid_port` says there is no such port.
    InvalidPort {
        /// The port id.
        port: u16,
    },
    /// Another [`super::Port`] already owns this port.
    PortInUse {
        /// The port id.
        port: u16,
    },
    /// The port is stopped, so its queues cannot be polled.
    PortStopped {
        /// The port id.
        port: u16,
    },
    /// An `rte_eth_*` call on a port returned an error.
    PortCall {
        /// The DPDK function that failed.
        call: &'static str,
        /// The port id.
        port: u16,
        /// The call's return value (a negative errno).
        ret: i32,
    },
    /// An `rte_eth_*_queue_setup` call returned an error.
    QueueSetup {
        /// The DPDK function that failed.
        call: &'static str,
        /// The port id.
        port: u16,
        /// The queue index.
        queue: u16,
        /// The call's return value (a negative errno).
        ret: i32,
    },
    /// The port has no such queue.
    NoSuchQueue {
        /// The port id.
        port: u16,
        /// The queue index asked for.
        queue: u16,
        /// How many queues of that direction the port has.
        count: u16,
    },
    /// A handle for this queue already exists.
    QueueInUse {
        /// The port id.
        port: u16,
        /// The queue index.
        queue: u16,
    },
}

/// Describes an errno value, including DPDK's own (`E_RTE_*`).
fn describe(errno: i32) -> String {
    match errno {
        1001 => "operation not allowed in a secondary process (E_RTE_SECONDARY)".to_owned(),
        1002 => "missing rte_config (E_RTE_NO_CONFIG)".to_owned(),
        e => io::Error::from_raw_os_error(e).to_string(),
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpdkError::InteriorNul { what, value } => {
                write!(f, "{what} {value:?} contains a NUL byte")
            }
            DpdkError::TooManyArgs => f.write_str("too many EAL arguments"),
            DpdkError::EalInit { errno } => {
                write!(
                    f,
                    "rte_eal_init failed: {} (rte_errno {errno})",
                    describe(*errno)
                )
            }
            DpdkError::EalNotRunning => {
                f.write_str("the DPDK EAL is not initialised (or was cleaned up)")
            }
            DpdkError::ThreadRegister { errno } => write!(
                f,
                "rte_thread_register failed: {} (rte_errno {errno})",
                describe(*errno)
            ),
            DpdkError::RingCreate { name, errno } => write!(
                f,
                "rte_ring_create({name}) failed: {}",
                io::Error::from_raw_os_error(*errno)
            ),
            DpdkError::MempoolCreate { name, errno } => write!(
                f,
                "rte_pktmbuf_pool_create({name:?}) failed: {} (rte_errno {errno})",
                describe(*errno)
            ),
            DpdkError::PortNotFound { name, ret } => write!(
                f,
                "rte_eth_dev_get_port_by_name({name:?}) failed: {} (ret {ret}); \
                 is the device probed (--vdev / PCI allow list)?",
                describe(-ret)
            ),
            DpdkError::InvalidPort { port } => write!(f, "port {port} does not exist"),
            DpdkError::PortInUse { port } => {
                write!(f, "port {port} is already configured by this process")
            }
            DpdkError::PortStopped { port } => write!(f, "port {port} is stopped"),
            DpdkError::PortCall { call, port, ret } => {
                write!(
                    f,
                    "{call}(port {port}) failed: {} (ret {ret})",
                    describe(-ret)
                )
            }
            DpdkError::QueueSetup {
                call,
                port,
                queue,
                ret,
            } => write!(
                f,
                "{call}(port {port}, queue {queue}) failed: {} (ret {ret})",
                describe(-ret)
            ),
            DpdkError::NoSuchQueue { port, queue, count } => {
                write!(f, "port {port} has no queue {queue} (it has {count})")
            }
            DpdkError::QueueInUse { port, queue } => {
                write!(f, "queue {queue} of port {port} is already in use")
            }
        }
    }
}

impl std::error::Error for DpdkError {}

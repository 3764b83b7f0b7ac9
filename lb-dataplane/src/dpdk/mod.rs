//! Thin safe layer over DPDK (through the `dpdk-sys` FFI crate).
//!
//! This module and `dpdk-sys` are the only places in the project with `unsafe`;
//! every `unsafe` block carries a `// SAFETY:` comment.
//!
//! # Pieces
//!
//! * [`Eal`]: `rte_eal_init` (argv\[0\] is added here) and, on drop,
//!   `rte_eal_cleanup`. [`register_thread`] / [`unregister_thread`] turn a Rust
//!   thread (pinned with `core_affinity`) into a DPDK non-EAL lcore so that
//!   mempool caches work; [`tsc_hz`], [`rdtsc`], [`lcore_id`], [`socket_id`].
//! * [`Mempool`]: a packet-mbuf pool (`rte_pktmbuf_pool_create`); cheap to
//!   clone, `Send + Sync`; [`Mempool::alloc`] hands out an owned [`Mbuf`].
//! * [`Port`]: [`Port::by_name`] (a vdev name such as `net_ring0` /
//!   `net_af_packet0`, or a PCI address), [`port_count`], [`Port::configure`]
//!   (configure, RSS over IP/TCP/UDP clamped to what the device offers, queue
//!   setup, start, promiscuous), [`Port::mac`], [`Port::stats`], [`Port::xstats`],
//!   [`Port::link`], [`Port::stop`] / [`Port::start`]; dropping a `Port` stops and
//!   closes the device.
//! * Bursts: [`MbufArray`] is a fixed array of [`BURST`] mbufs (no allocation).
//!   [`RxQueue::rx_burst`] appends to one, [`TxQueue::tx_burst`] sends one and
//!   frees whatever the driver did not accept. Process mbufs in place with
//!   [`MbufArray::as_mut_slice`], or move them out with [`MbufArray::drain`] and
//!   into another array with [`MbufArray::push`].
//! * Frames: [`Mbuf::with_frame`] lends the mbuf's data buffer to the core
//!   library as an `lb_core::frame::Frame` and writes `data_off`, `data_len` and
//!   `pkt_len` back afterwards. [`Mbuf::is_contiguous`] tells multi-segment
//!   mbufs apart (the frame only covers the first segment).
//!
//! # Differences from a plain `rx_burst(port_id, queue, ..)` API
//!
//! DPDK queues are not thread safe and must not be polled while the port is
//! stopped or closed. So bursts go through queue handles: [`Port::rx_queue`] /
//! [`Port::tx_queue`] hand out at most one [`RxQueue`] / [`TxQueue`] per queue,
//! each borrowing the [`Port`] (which therefore cannot be stopped or dropped
//! while a worker polls it). Hand them to workers with `std::thread::scope`, or
//! keep the `Port` in an `Arc` and take the handle inside the worker thread.
//! Handles are `Send`; the borrow costs nothing on the hot path.
//!
//! # Lifetimes of DPDK objects
//!
//! * Dropping the [`Eal`] calls `rte_eal_cleanup` only if no [`Mempool`] or
//!   [`Port`] is alive any more (otherwise cleanup is skipped and the process
//!   exit reclaims everything); after that, creating DPDK objects fails with
//!   [`DpdkError::EalNotRunning`]. Drop in the natural order: ports, pools, EAL.
//! * A [`Port`] keeps a clone of its [`Mempool`] (the driver refills RX rings
//!   from it). A pool is freed when its last handle goes and no mbuf of it is in
//!   use; otherwise it is leaked on purpose (an in-flight mbuf must stay valid).
//!
//! # Assumptions about drivers
//!
//! Received mbufs are taken as exclusively owned, with a private data buffer
//! (the usual case). Driver modes that hand out mbufs sharing one buffer area
//! (for example mlx5's multi-packet RQ, `mprq_en=1`) must stay off, because
//! [`Mbuf::with_frame`] lends out the whole buffer for writing.

mod eal;
mod error;
mod flow;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use eal::{lcore_id, rdtsc, register_thread, socket_id, tsc_hz, unregister_thread, Eal};
pub use error::DpdkError;
pub use mbuf::{Drain, Mbuf, MbufArray, BURST, PKTMBUF_HEADROOM};
pub use mempool::{Mempool, DEFAULT_DATA_ROOM};
pub use port::{port_count, LinkStatus, Port, PortConfig, PortStats, RxQueue, TxQueue};
pub use ring::{spsc, Consumer, Producer};

//! Ethernet ports: configuration, start/stop, statistics, and RX/TX queue
//! handles for bursts.

use std::ffi::{c_uint, CStr, CString};
use std::fmt;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys as sys;

use super::eal::EalRef;
use super::mbuf::MbufArray;
use super::mempool::Mempool;
use super::DpdkError;

const MAX_PORTS: usize = sys::RTE_MAX_ETHPORTS as usize;

/// Ports owned by a live [`Port`] (one owner per port id).
static PORT_OWNED: [AtomicBool; MAX_PORTS] = [const { AtomicBool::new(false) }; MAX_PORTS];

/// Number of usable ports (`rte_eth_dev_count_avail`); 0 without the EAL.
pub fn port_count() -> u16 {
    match EalRef::acquire() {
        // SAFETY: the EAL is running; the call only reads the port table.
        Ok(_eal) => unsafe { sys::rte_eth_dev_count_avail() },
        Err(_) => 0,
    }
}

/// How to set a port up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// RX queues (one per worker, typically).
    pub rx_queues: u16,
    /// TX queues.
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits; 0: default).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits; 0: default).
    pub tx_desc: u16,
    /// MTU to set, if not the device default.
    pub mtu: Option<u16>,
    /// Spread RX over the queues by an IP/TCP/UDP hash (if `rx_queues > 1` and
    /// the device supports it; hash types it lacks are dropped).
    pub rss: bool,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            mtu: None,
            rss: true,
        }
    }
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the NIC because RX queues were full.
    pub imissed: u64,
    /// Erroneous received packets.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Link state (`rte_eth_link_get_nowait`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStatus {
    /// Whether the link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Releases a port id's ownership on drop.
struct Owned(u16);

impl Drop for Owned {
    fn drop(&mut self) {
        PORT_OWNED[usize::from(self.0)].store(false, Ordering::Release);
    }
}

/// A configured Ethernet port. Dropping it stops and closes the device (a
/// closed vdev port is gone for the rest of the process).
pub struct Port {
    id: u16,
    rx_queues: u16,
    tx_queues: u16,
    rx_desc: u16,
    tx_desc: u16,
    rss_hf: u64,
    mac: [u8; 6],
    driver: String,
    started: bool,
    rx_claimed: Box<[AtomicBool]>,
    tx_claimed: Box<[AtomicBool]>,
    // Dropped after `Drop::drop` closed the device, in this order.
    _pool: Mempool,
    _owned: Owned,
    _eal: EalRef,
}

/// Turns a negative return value into a [`DpdkError::PortCall`].
fn check(call: &'static str, port: u16, ret: i32) -> Result<i32, DpdkError> {
    if ret < 0 {
        Err(DpdkError::PortCall { call, port, ret })
    } else {
        Ok(ret)
    }
}

impl Port {
    /// The port id of a probed device: a vdev name (`net_ring0`,
    /// `net_af_packet0`, the name before the first comma of `--vdev`) or a
    /// PCI address (`0000:01:00.0`).
    pub fn by_name(name: &str) -> Result<u16, DpdkError> {
        let _eal = EalRef::acquire()?;
        let cname = CString::new(name).map_err(|_| DpdkError::InteriorNul {
            what: "port name",
            value: name.to_owned(),
        })?;
        let mut id = 0u16;
        // SAFETY: the EAL is running; `cname` is a valid C string and `id` a
        // valid out-pointer for the call's duration.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if ret < 0 {
            return Err(DpdkError::PortNotFound {
                name: name.to_owned(),
                ret,
            });
        }
        Ok(id)
    }

    /// Configures port `port_id` (`rte_eth_dev_configure`, with RSS over
    /// IP/TCP/UDP when `cfg.rss` and more than one RX queue, clamped to the
    /// hash types the device offers), sets up its queues with RX buffers from
    /// `pool`, starts it and turns promiscuous mode on (where supported).
    /// On failure the port is left unstarted and may be configured again.
    pub fn configure(port_id: u16, cfg: PortConfig, pool: &Mempool) -> Result<Port, DpdkError> {
        let eal = EalRef::acquire()?;
        let idx = usize::from(port_id);
        // SAFETY: the EAL is running; the call only reads the port table.
        if idx >= MAX_PORTS || unsafe { sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            return Err(DpdkError::InvalidPort { port: port_id });
        }
        if PORT_OWNED[idx]
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(DpdkError::PortInUse { port: port_id });
        }
        let owned = Owned(port_id);

        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: valid port; `info` is a valid out-pointer.
        check("rte_eth_dev_info_get", port_id, unsafe {
            sys::rte_eth_dev_info_get(port_id, &mut info)
        })?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: DPDK sets `driver_name` to the driver's static C string.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };

        let mut conf = sys::rte_eth_conf::default();
        let mut rss_hf = 0;
        if cfg.rss && cfg.rx_queues > 1 {
            let wanted =
                u64::from(sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_TCP | sys::RTE_ETH_RSS_UDP);
            rss_hf = wanted & info.flow_type_rss_offloads;
            if rss_hf != 0 {
                conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_key = ptr::null_mut();
                conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
                let hash_offload = u64::from(sys::RTE_ETH_RX_OFFLOAD_RSS_HASH);
                if info.rx_offload_capa & hash_offload != 0 {
                    conf.rxmode.offloads |= hash_offload;
                }
            }
        }
        if let Some(mtu) = cfg.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }
        // SAFETY: valid, stopped port (we own it and have not started it);
        // `conf` is a valid, fully initialised configuration.
        let ret =
            unsafe { sys::rte_eth_dev_configure(port_id, cfg.rx_queues, cfg.tx_queues, &conf) };
        check("rte_eth_dev_configure", port_id, ret)?;

        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port; both are valid in/out pointers.
        let ret =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut rx_desc, &mut tx_desc) };
        check("rte_eth_dev_adjust_nb_rx_tx_desc", port_id, ret)?;

        // SAFETY: valid port; a plain lookup (-1 = SOCKET_ID_ANY if unknown).
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        // DPDK takes the socket as unsigned; SOCKET_ID_ANY (-1) is passed as ~0
        // exactly like C does.
        let socket = socket as c_uint;
        for q in 0..cfg.rx_queues {
            // SAFETY: configured, stopped port; q < rx_queues; NULL rxconf means
            // the driver defaults; the pool outlives the port (the port keeps a
            // handle to it).
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(port_id, q, rx_desc, socket, ptr::null(), pool.as_ptr())
            };
            if ret < 0 {
                return Err(DpdkError::QueueSetup {
                    call: "rte_eth_rx_queue_setup",
                    port: port_id,
                    queue: q,
                    ret,
                });
            }
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: configured, stopped port; q < tx_queues; NULL txconf means
            // the driver defaults.
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(port_id, q, tx_desc, socket, ptr::null()) };
            if ret < 0 {
                return Err(DpdkError::QueueSetup {
                    call: "rte_eth_tx_queue_setup",
                    port: port_id,
                    queue: q,
                    ret,
                });
            }
        }

        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: valid port; `mac` is a valid out-pointer.
        check("rte_eth_macaddr_get", port_id, unsafe {
            sys::rte_eth_macaddr_get(port_id, &mut mac)
        })?;

        // SAFETY: configured port with all queues set up.
        check("rte_eth_dev_start", port_id, unsafe {
            sys::rte_eth_dev_start(port_id)
        })?;
        // Not every driver has promiscuous mode (-ENOTSUP); that is fine.
        // SAFETY: valid, started port.
        let _ = unsafe { sys::rte_eth_promiscuous_enable(port_id) };

        let claims = |n: u16| (0..n).map(|_| AtomicBool::new(false)).collect::<Box<[_]>>();
        Ok(Port {
            id: port_id,
            rx_queues: cfg.rx_queues,
            tx_queues: cfg.tx_queues,
            rx_desc,
            tx_desc,
            rss_hf,
            mac: mac.addr_bytes,
            driver,
            started: true,
            rx_claimed: claims(cfg.rx_queues),
            tx_claimed: claims(cfg.tx_queues),
            _pool: pool.clone(),
            _owned: owned,
            _eal: eal,
        })
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The port's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The driver's name (`net_ring`, `net_af_packet`, `net_ice`, ...).
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// Number of RX queues.
    pub fn rx_queues(&self) -> u16 {
        self.rx_queues
    }

    /// Number of TX queues.
    pub fn tx_queues(&self) -> u16 {
        self.tx_queues
    }

    /// RX and TX descriptors per queue, after adjustment to the device.
    pub fn descriptors(&self) -> (u16, u16) {
        (self.rx_desc, self.tx_desc)
    }

    /// The RSS hash types in use (0: no RSS, everything lands on queue 0
    /// unless the driver spreads by itself).
    pub fn rss_hf(&self) -> u64 {
        self.rss_hf
    }

    /// Whether the port is started.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// Basic counters (`rte_eth_stats_get`).
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: we own the configured port; `s` is a valid out-pointer.
        check("rte_eth_stats_get", self.id, unsafe {
            sys::rte_eth_stats_get(self.id, &mut s)
        })?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Extended, driver-specific counters by name (`rte_eth_xstats_get`). Allocates.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>, DpdkError> {
        // SAFETY: we own the configured port; NULL/0 asks for the count.
        let n = unsafe { sys::rte_eth_xstats_get_names(self.id, ptr::null_mut(), 0) };
        let n = check("rte_eth_xstats_get_names", self.id, n)? as usize;
        let empty_name = sys::rte_eth_xstat_name { name: [0; 64] };
        let mut names = vec![empty_name; n];
        let mut values = vec![sys::rte_eth_xstat::default(); n];
        // SAFETY: `names` has room for `n` entries.
        let got =
            unsafe { sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as c_uint) };
        let got_names = check("rte_eth_xstats_get_names", self.id, got)? as usize;
        // SAFETY: `values` has room for `n` entries.
        let got = unsafe { sys::rte_eth_xstats_get(self.id, values.as_mut_ptr(), n as c_uint) };
        let got_values = check("rte_eth_xstats_get", self.id, got)? as usize;
        let names = &names[..got_names.min(n)];
        Ok(values[..got_values.min(n)]
            .iter()
            .filter_map(|x| {
                let name = names.get(usize::try_from(x.id).ok()?)?;
                let bytes: Vec<u8> = name
                    .name
                    .iter()
                    .take_while(|&&c| c != 0)
                    .map(|&c| c as u8)
                    .collect();
                Some((String::from_utf8_lossy(&bytes).into_owned(), x.value))
            })
            .collect())
    }

    /// Link state, without waiting (`rte_eth_link_get_nowait`).
    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: we own the configured port; `link` is a valid out-pointer.
        check("rte_eth_link_get_nowait", self.id, unsafe {
            sys::rte_eth_link_get_nowait(self.id, &mut link)
        })?;
        Ok(LinkStatus {
            up: u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    /// Stops the port (`rte_eth_dev_stop`). Needs `&mut`: no queue handle may
    /// be alive.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        if self.started {
            // SAFETY: we own the started port and no queue handle borrows it.
            check("rte_eth_dev_stop", self.id, unsafe {
                sys::rte_eth_dev_stop(self.id)
            })?;
            self.started = false;
        }
        Ok(())
    }

    /// Starts the port again after [`Port::stop`].
    pub fn start(&mut self) -> Result<(), DpdkError> {
        if !self.started {
            // SAFETY: we own the configured, stopped port.
            check("rte_eth_dev_start", self.id, unsafe {
                sys::rte_eth_dev_start(self.id)
            })?;
            self.started = true;
        }
        Ok(())
    }

    /// The handle for RX queue `queue`: at most one at a time per queue, and
    /// only while the port is started.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue<'_>, DpdkError> {
        self.claim(&self.rx_claimed, queue)?;
        Ok(RxQueue { port: self, queue })
    }

    /// The handle for TX queue `queue`: at most one at a time per queue, and
    /// only while the port is started.
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue<'_>, DpdkError> {
        self.claim(&self.tx_claimed, queue)?;
        Ok(TxQueue { port: self, queue })
    }

    fn claim(&self, claims: &[AtomicBool], queue: u16) -> Result<(), DpdkError> {
        if !self.started {
            return Err(DpdkError::PortStopped { port: self.id });
        }
        let slot = claims
            .get(usize::from(queue))
            .ok_or(DpdkError::NoSuchQueue {
                port: self.id,
                queue,
                count: claims.len() as u16,
            })?;
        slot.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .map(drop)
            .map_err(|_| DpdkError::QueueInUse {
                port: self.id,
                queue,
            })
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if self.started {
            // SAFETY: we own the started port; no queue handle borrows it.
            let _ = unsafe { sys::rte_eth_dev_stop(self.id) };
        }
        // SAFETY: we own the stopped port; nothing uses it after this. The pool
        // its queues drew from is released only after (field drop order).
        let _ = unsafe { sys::rte_eth_dev_close(self.id) };
    }
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.id)
            .field("driver", &self.driver)
            .field("rx_queues", &self.rx_queues)
            .field("tx_queues", &self.tx_queues)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// Exclusive handle to one RX queue of a started [`Port`]; see [`Port::rx_queue`].
#[derive(Debug)]
pub struct RxQueue<'p> {
    port: &'p Port,
    queue: u16,
}

impl RxQueue<'_> {
    /// Receives up to `out.spare()` packets, appending them to `out`; returns how
    /// many arrived.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut MbufArray) -> usize {
        let (slots, spare) = out.spare_ptr();
        if spare == 0 {
            return 0;
        }
        // SAFETY: the port is started and stays so while this handle borrows it
        // (stop/drop need `&mut Port`); `queue` < its RX queue count; this handle
        // is the queue's only user (claim); `slots` has room for `spare` (<= BURST)
        // pointers.
        let n = unsafe { sys::rte_eth_rx_burst(self.port.id, self.queue, slots, spare as u16) };
        let n = usize::from(n).min(spare);
        // SAFETY: the driver wrote `n` received mbufs, which now belong to us.
        unsafe { out.commit(n) };
        n
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port.id
    }
}

impl Drop for RxQueue<'_> {
    fn drop(&mut self) {
        self.port.rx_claimed[usize::from(self.queue)].store(false, Ordering::Release);
    }
}

/// Exclusive handle to one TX queue of a started [`Port`]; see [`Port::tx_queue`].
#[derive(Debug)]
pub struct TxQueue<'p> {
    port: &'p Port,
    queue: u16,
}

impl TxQueue<'_> {
    /// Sends the mbufs of `pkts`, frees those the driver did not accept and
    /// leaves `pkts` empty. Returns `(sent, dropped)`.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut MbufArray) -> (usize, usize) {
        let len = pkts.len();
        let sent = self.send(pkts);
        pkts.clear();
        (sent, len - sent)
    }

    /// Sends what the driver accepts now and keeps the rest in `pkts` (moved to
    /// the front) for another try. Returns how many were sent.
    #[inline]
    pub fn try_tx_burst(&mut self, pkts: &mut MbufArray) -> usize {
        self.send(pkts)
    }

    #[inline]
    fn send(&mut self, pkts: &mut MbufArray) -> usize {
        let (held, len) = pkts.held_ptr();
        if len == 0 {
            return 0;
        }
        // SAFETY: the port is started and stays so while this handle borrows it;
        // `queue` < its TX queue count; this handle is the queue's only user;
        // `held` points at `len` (<= BURST) owned, valid mbufs.
        let sent = unsafe { sys::rte_eth_tx_burst(self.port.id, self.queue, held, len as u16) };
        let sent = usize::from(sent).min(len);
        // SAFETY: the driver took ownership of the first `sent` mbufs.
        unsafe { pkts.consume_front(sent) };
        sent
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.port.id
    }
}

impl Drop for TxQueue<'_> {
    fn drop(&mut self) {
        self.port.tx_claimed[usize::from(self.queue)].store(false, Ordering::Release);
    }
}

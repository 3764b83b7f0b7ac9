//! EAL initialisation and teardown, thread registration, time stamp counter.

use std::ffi::{c_char, c_int, CString};
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};

use dpdk_sys as sys;

use super::DpdkError;

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const CLOSED: u8 = 2;

/// Whether the EAL is initialised and not cleaned up.
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// Live objects ([`EalRef`]s) that need the EAL; cleanup waits for zero.
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// `rte_errno` of the calling thread.
pub(super) fn rte_errno() -> i32 {
    // SAFETY: the shim reads the calling thread's TLS `rte_errno`; always valid.
    unsafe { sys::dpdk_sys_rte_errno() }
}

/// Proof that the EAL is running, held by every object that calls into it;
/// while any exists, dropping the [`Eal`] does not call `rte_eal_cleanup`.
pub(super) struct EalRef(());

impl EalRef {
    /// Fails unless the EAL is initialised and not cleaned up.
    pub(super) fn acquire() -> Result<EalRef, DpdkError> {
        // Announce first, then check: together with `Eal::drop` (mark closed,
        // then count) a SeqCst pair means cleanup never runs under a live ref.
        LIVE.fetch_add(1, SeqCst);
        if STATE.load(SeqCst) == RUNNING {
            Ok(EalRef(()))
        } else {
            LIVE.fetch_sub(1, SeqCst);
            Err(DpdkError::EalNotRunning)
        }
    }
}

impl Drop for EalRef {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, SeqCst);
    }
}

impl fmt::Debug for EalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EalRef")
    }
}

/// The initialised DPDK Environment Abstraction Layer. Once per process.
///
/// Dropping it calls `rte_eal_cleanup` if no [`super::Port`] or
/// [`super::Mempool`] is alive (else cleanup is left to process exit).
#[derive(Debug)]
pub struct Eal {
    _priv: (),
}

impl Eal {
    /// Runs `rte_eal_init` with `args` (EAL options only, without argv\[0\],
    /// which is added here), e.g. `["-l", "0", "--in-memory", "--vdev",
    /// "net_ring0"]`. A second call in the same process fails (`EALREADY`).
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        let argv0 = std::env::args()
            .next()
            .unwrap_or_else(|| "lb-dataplane".to_owned());
        let mut cargs = Vec::with_capacity(args.len() + 1);
        for arg in std::iter::once(&argv0).chain(args) {
            let c = CString::new(arg.as_bytes()).map_err(|_| DpdkError::InteriorNul {
                what: "EAL argument",
                value: arg.clone(),
            })?;
            cargs.push(c);
        }
        let argc = c_int::try_from(cargs.len()).map_err(|_| DpdkError::TooManyArgs)?;
        // DPDK may keep pointers into argv (it is the process's argv in C), so
        // the strings live as long as the process: a few bytes, once.
        let cargs: &'static [CString] = cargs.leak();
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr().cast_mut()).collect();
        argv.push(std::ptr::null_mut());
        // SAFETY: `argv` holds `argc` pointers to NUL-terminated strings that live
        // forever, then a NULL, like C's argv. rte_eal_init permutes the pointer
        // array (getopt) but does not write through the pointers. It guards itself
        // against running twice (EALREADY).
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::EalInit { errno: rte_errno() });
        }
        STATE.store(RUNNING, SeqCst);
        Ok(Eal { _priv: () })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        STATE.store(CLOSED, SeqCst);
        if LIVE.load(SeqCst) == 0 {
            // SAFETY: the EAL was initialised (an `Eal` exists only after a
            // successful rte_eal_init), no object that uses it is alive, and new
            // ones can no longer be created (STATE is CLOSED; see EalRef::acquire).
            unsafe { sys::rte_eal_cleanup() };
        }
    }
}

/// Makes the calling (non-EAL) thread a DPDK lcore with `rte_thread_register`,
/// giving it an lcore id and thus a per-lcore mempool cache. Call it once in
/// each worker thread after pinning it (a second call would allocate another
/// lcore id and leak the first); call [`unregister_thread`] before it ends.
///
/// DPDK then disables multi-process support (`rte_mp_disable`): secondary
/// processes (`dpdk-proc-info`, `dpdk-pdump`) can no longer attach, and if one
/// already has, registration fails with `EINVAL`.
pub fn register_thread() -> Result<(), DpdkError> {
    let _eal = EalRef::acquire()?;
    // SAFETY: the EAL is running (held by `_eal`); registering only touches the
    // calling thread's TLS and the lcore table, which DPDK locks.
    let ret = unsafe { sys::rte_thread_register() };
    if ret < 0 {
        return Err(DpdkError::ThreadRegister { errno: rte_errno() });
    }
    Ok(())
}

/// Releases the calling thread's lcore id (`rte_thread_unregister`). Only for
/// threads registered with [`register_thread`]; a no-op for unregistered
/// threads and once the EAL is gone.
pub fn unregister_thread() {
    if let Ok(_eal) = EalRef::acquire() {
        // SAFETY: the EAL is running; rte_thread_unregister ignores threads that
        // have no lcore id and only touches this thread's TLS and the locked
        // lcore table.
        unsafe { sys::rte_thread_unregister() };
    }
}

/// The calling thread's lcore id, or `None` for an unregistered thread.
#[inline]
pub fn lcore_id() -> Option<u32> {
    // SAFETY: rte_lcore_id reads the calling thread's TLS lcore id; always valid.
    let id = unsafe { sys::rte_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(id)
}

/// The NUMA socket of the calling thread (`SOCKET_ID_ANY`, -1, if unknown).
pub fn socket_id() -> i32 {
    // SAFETY: rte_socket_id reads the calling thread's TLS; always valid.
    let id = unsafe { sys::rte_socket_id() };
    i32::try_from(id).unwrap_or(sys::SOCKET_ID_ANY)
}

/// Time stamp counter frequency measured by the EAL (0 before [`Eal::init`]).
#[inline]
pub fn tsc_hz() -> u64 {
    // SAFETY: rte_get_tsc_hz returns a global the EAL sets during init; reading
    // it is always valid.
    unsafe { sys::rte_get_tsc_hz() }
}

/// The time stamp counter (`rte_rdtsc`), read inline.
#[inline]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC exists on every x86_64 CPU and has no memory effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: rte_rdtsc reads the cycle counter; no memory effects.
        unsafe { sys::rte_rdtsc() }
    }
}

//! Packet-mbuf pools.

use std::ffi::CString;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys as sys;

use super::eal::{rte_errno, EalRef};
use super::mbuf::{Mbuf, MbufArray};
use super::DpdkError;

/// `RTE_MBUF_DEFAULT_BUF_SIZE`: 2048 bytes of data room plus the headroom.
pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`). Clones share the pool.
///
/// The pool is freed when the last handle (ports hold one) is dropped and none
/// of its mbufs is in use; if some still are, it is leaked on purpose.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    ptr: NonNull<sys::rte_mempool>,
    /// `None` once leaked (then the EAL is never cleaned up).
    eal: Option<EalRef>,
}

// SAFETY: the pool uses DPDK's default multi-producer/multi-consumer ring, so
// get/put from any thread is safe; the per-lcore caches are indexed by the
// calling thread's lcore id, unique per thread (unregistered threads bypass them).
unsafe impl Send for PoolInner {}
// SAFETY: as above; all operations through `&PoolInner` are thread safe.
unsafe impl Sync for PoolInner {}

impl Mempool {
    /// Creates a pool of `n_mbufs` mbufs (best `2^k - 1`) with a per-lcore cache
    /// of `cache_size` (0 or up to 512, dividing `n_mbufs` nicely) and
    /// `data_room` bytes per buffer including [`super::PKTMBUF_HEADROOM`]
    /// ([`DEFAULT_DATA_ROOM`] fits a 1500-byte MTU), on NUMA socket `socket_id`
    /// (-1 for any). `name` must be unique in the process and short (< 26 bytes).
    pub fn new(
        name: &str,
        n_mbufs: u32,
        cache_size: u32,
        data_room: u16,
        socket_id: i32,
    ) -> Result<Mempool, DpdkError> {
        let eal = EalRef::acquire()?;
        let cname = CString::new(name).map_err(|_| DpdkError::InteriorNul {
            what: "mempool name",
            value: name.to_owned(),
        })?;
        // SAFETY: the EAL is running (`eal`); `cname` is a valid C string for the
        // call's duration (DPDK copies the name).
        let ptr = unsafe {
            sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                n_mbufs,
                cache_size,
                0,
                data_room,
                socket_id,
            )
        };
        let ptr = NonNull::new(ptr).ok_or_else(|| DpdkError::MempoolCreate {
            name: name.to_owned(),
            errno: rte_errno(),
        })?;
        Ok(Mempool {
            inner: Arc::new(PoolInner {
                ptr,
                eal: Some(eal),
            }),
        })
    }

    /// One mbuf (empty, `data_off` = headroom), or `None` if the pool is empty.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid while `self` lives; allocation is thread safe.
        let ptr = unsafe { sys::rte_pktmbuf_alloc(self.as_ptr()) };
        // SAFETY: a freshly allocated mbuf belongs to the caller alone.
        NonNull::new(ptr).map(|p| unsafe { Mbuf::from_raw(p) })
    }

    /// Fills the free slots of `array` with fresh mbufs, all or nothing; returns
    /// how many were added (0 if the pool has too few).
    #[inline]
    pub fn alloc_bulk(&self, array: &mut MbufArray) -> usize {
        let (slots, n) = array.spare_ptr();
        if n == 0 {
            return 0;
        }
        // SAFETY: the pool is valid; `slots` has room for `n` (<= BURST) pointers.
        let ret = unsafe { sys::rte_pktmbuf_alloc_bulk(self.as_ptr(), slots, n as u32) };
        if ret != 0 {
            return 0;
        }
        // SAFETY: on success the `n` slots hold fresh mbufs owned by nobody else.
        unsafe { array.commit(n) };
        n
    }

    /// Mbufs available in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid; the count is a racy but safe read.
        unsafe { sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// Mbufs taken out of the pool (held by the application or by drivers).
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid; the count is a racy but safe read.
        unsafe { sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// The raw pool (valid while `self` lives).
    #[inline]
    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.ptr.as_ptr()
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: the pool is valid; no handle is left (this is the last one).
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no handle and no mbuf of the pool exists any more (every
            // `Mbuf` and every driver-held mbuf counts as in use; ports hold a
            // handle), so nothing can touch the pool after this.
            unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
        } else {
            // Mbufs are still out there (in a ring, a driver queue, a leaked
            // `Mbuf`); they must stay valid, so the pool and the EAL stay too.
            std::mem::forget(self.eal.take());
        }
    }
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("ptr", &self.inner.ptr)
            .field("available", &self.available())
            .field("in_use", &self.in_use())
            .finish()
    }
}

//! Single-producer/single-consumer mbuf rings (`rte_ring` with `RING_F_SP_ENQ |
//! RING_F_SC_DEQ`): how one worker hands a packet it received but does not own to
//! the worker that does.
//!
//! [`spsc`] returns the two ends; neither is `Clone`, so there is exactly one
//! producer and one consumer, which is what the SP/SC flags promise DPDK.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys as sys;

use super::eal::{rte_errno, EalRef};
use super::{DpdkError, MbufArray};

/// `RING_F_SP_ENQ` (rte_ring_core.h): one producer.
const RING_F_SP_ENQ: u32 = 0x0001;
/// `RING_F_SC_DEQ` (rte_ring_core.h): one consumer.
const RING_F_SC_DEQ: u32 = 0x0002;

struct RingInner {
    ptr: NonNull<sys::rte_ring>,
    _eal: EalRef,
}

// SAFETY: the ring is shared memory designed for use from two threads; the SP/SC
// discipline is enforced by `Producer`/`Consumer` not being Clone.
unsafe impl Send for RingInner {}
// SAFETY: as above; `&RingInner` is only used through one producer and one consumer.
unsafe impl Sync for RingInner {}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Both ends are gone: free what is still queued, then the ring.
        let mut left = MbufArray::new();
        loop {
            let (slots, spare) = left.spare_ptr();
            // SAFETY: nobody else uses the ring any more; `slots` has room for
            // `spare` pointers.
            let n = unsafe {
                sys::rte_ring_dequeue_burst(
                    self.ptr.as_ptr(),
                    slots.cast(),
                    spare as u32,
                    std::ptr::null_mut(),
                )
            } as usize;
            if n == 0 {
                break;
            }
            // SAFETY: the ring handed over `n` mbufs it owned.
            unsafe { left.commit(n) };
            left.clear();
        }
        // SAFETY: created by rte_ring_create, freed once, no user left.
        unsafe { sys::rte_ring_free(self.ptr.as_ptr()) };
    }
}

/// The enqueueing end of an SPSC ring.
pub struct Producer {
    ring: Arc<RingInner>,
}

/// The dequeueing end of an SPSC ring.
pub struct Consumer {
    ring: Arc<RingInner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

/// Creates an SPSC ring of `capacity` slots (a power of two; one stays unused).
pub fn spsc(name: &str, capacity: u32, socket_id: i32) -> Result<(Producer, Consumer), DpdkError> {
    let eal = EalRef::acquire()?;
    let cname = CString::new(name).map_err(|_| DpdkError::InteriorNul {
        what: "ring name",
        value: name.to_owned(),
    })?;
    // SAFETY: the EAL runs (EalRef); `cname` outlives the call.
    let ptr = unsafe {
        sys::rte_ring_create(
            cname.as_ptr(),
            capacity,
            socket_id,
            RING_F_SP_ENQ | RING_F_SC_DEQ,
        )
    };
    let ptr = NonNull::new(ptr).ok_or_else(|| DpdkError::RingCreate {
        name: name.to_owned(),
        errno: rte_errno(),
    })?;
    let ring = Arc::new(RingInner { ptr, _eal: eal });
    Ok((Producer { ring: ring.clone() }, Consumer { ring }))
}

impl Producer {
    /// Moves as many of `pkts` into the ring as fit, from the front; the rest stay
    /// in `pkts`. Returns how many were moved.
    #[inline]
    pub fn enqueue_burst(&mut self, pkts: &mut MbufArray) -> usize {
        let (held, len) = pkts.held_ptr();
        if len == 0 {
            return 0;
        }
        // SAFETY: this is the ring's only producer; `held` points at `len` owned
        // mbufs.
        let n = unsafe {
            sys::rte_ring_enqueue_burst(
                self.ring.ptr.as_ptr(),
                held.cast::<*mut std::ffi::c_void>().cast_const(),
                len as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        let n = n.min(len);
        // SAFETY: the ring owns the first `n` mbufs now.
        unsafe { pkts.consume_front(n) };
        n
    }
}

impl Consumer {
    /// Appends up to the free room of `out` from the ring; returns how many.
    #[inline]
    pub fn dequeue_burst(&mut self, out: &mut MbufArray) -> usize {
        let (slots, spare) = out.spare_ptr();
        if spare == 0 {
            return 0;
        }
        // SAFETY: this is the ring's only consumer; `slots` has room for `spare`.
        let n = unsafe {
            sys::rte_ring_dequeue_burst(
                self.ring.ptr.as_ptr(),
                slots.cast(),
                spare as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        let n = n.min(spare);
        // SAFETY: the ring handed over `n` distinct mbufs it owned.
        unsafe { out.commit(n) };
        n
    }
}

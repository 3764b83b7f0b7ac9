//! CPU hints the core cannot give itself: `lb-core` forbids `unsafe`, and the
//! prefetch instruction's intrinsic takes a raw pointer.

/// Starts loading the cache line at `addr` into every cache level, without
/// waiting for it: the connection table's burst lookups call it for the buckets
/// and records they will read next.
#[inline]
pub fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and never changes memory;
    // any address, mapped or not, is allowed.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

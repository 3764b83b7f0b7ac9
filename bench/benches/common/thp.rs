//! Transparent hugepages under a connection table, for the benchmarks that
//! build one (the director does the same in lb-dataplane's `hugepages`; the
//! micro-benchmarks build without it). `LB_BENCH_THP=0` leaves 4 KiB pages.

use lb_core::conn::MemoryRegion;

/// Whether the run wants hugepages.
pub fn wanted() -> bool {
    std::env::var("LB_BENCH_THP").map_or(true, |v| v != "0")
}

/// What `lb-dataplane`'s `hugepages` does for a worker's table, on the whole
/// 2 MiB pages of each region.
pub fn advise(regions: impl IntoIterator<Item = MemoryRegion>) {
    const HUGE: usize = 2 << 20;
    const MADV_COLLAPSE: libc::c_int = 25;
    for region in regions {
        let start = region.start.next_multiple_of(HUGE);
        let end = (region.start + region.len) / HUGE * HUGE;
        if end <= start {
            continue;
        }
        let advise = |advice| {
            // SAFETY: the range lies inside memory the table owns for its
            // lifetime; the advice changes which pages back it, not its contents.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) }
        };
        let huge = advise(libc::MADV_HUGEPAGE);
        let collapsed = if region.populated {
            advise(MADV_COLLAPSE)
        } else {
            0
        };
        if huge != 0 || collapsed != 0 {
            eprintln!("madvise: {}", std::io::Error::last_os_error());
        }
    }
}

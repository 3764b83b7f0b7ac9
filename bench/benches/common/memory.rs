//! What the director does for a worker's connection table, for the benchmarks
//! that build one: transparent hugepages under its memory and the prefetch
//! instruction for its burst lookups, from lb-dataplane's OS layer. Without the
//! `dpdk` feature (no lb-dataplane) tables keep 4 KiB pages and read ahead with
//! plain loads; `LB_BENCH_THP=0` turns the hugepages off.

use lb_core::conn::MemoryRegion;

/// Advises hugepages for `regions` unless `LB_BENCH_THP=0`.
pub fn back_with_huge_pages(regions: impl IntoIterator<Item = MemoryRegion>) {
    if std::env::var("LB_BENCH_THP").is_ok_and(|v| v == "0") {
        return;
    }
    #[cfg(feature = "dpdk")]
    eprintln!("{}", lb_dataplane::hugepages::back_with_huge_pages(regions));
    #[cfg(not(feature = "dpdk"))]
    drop(regions.into_iter());
}

/// The director's prefetch, where the build has it.
pub fn prefetch() -> Option<fn(usize)> {
    #[cfg(feature = "dpdk")]
    return Some(lb_dataplane::cpu::prefetch);
    #[cfg(not(feature = "dpdk"))]
    None
}

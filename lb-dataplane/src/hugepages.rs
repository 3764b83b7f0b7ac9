//! Transparent huge pages under the connection tables: with 4 KiB pages a
//! lookup at millions of connections misses the TLB on the bucket and again on
//! the record; 2 MiB pages cover the index and slab with a few hundred entries.
//! `lb-core` only says where its long-lived memory is; the advice is given here.

use std::io;

use lb_core::conn::MemoryRegion;

const HUGE_PAGE: usize = 2 << 20;

/// Synchronous collapse of written pages into huge pages (Linux 6.1), which the
/// `libc` crate does not name yet.
const MADV_COLLAPSE: libc::c_int = 25;

const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";

/// Asks the kernel to back `regions` with transparent huge pages: future faults
/// get huge pages, and regions already written are collapsed now. Returns one
/// line for the log saying what backs them.
pub fn back_with_huge_pages(regions: impl IntoIterator<Item = MemoryRegion>) -> String {
    let mode = match std::fs::read_to_string(THP_ENABLED) {
        Ok(text) => selected_mode(&text).unwrap_or("unknown").to_owned(),
        Err(e) => return format!("4 KiB pages ({THP_ENABLED}: {e})"),
    };
    if mode != "always" && mode != "madvise" {
        return format!("4 KiB pages (transparent hugepages: {mode})");
    }
    let mut advised = 0;
    let mut collapsed = Vec::new();
    for region in regions {
        let Some((start, len)) = huge_page_span(region) else {
            continue;
        };
        if let Err(e) = madvise(start, len, libc::MADV_HUGEPAGE) {
            return format!("4 KiB pages (madvise MADV_HUGEPAGE: {e})");
        }
        advised += len;
        if region.populated {
            collapsed.push(match madvise(start, len, MADV_COLLAPSE) {
                Ok(()) => format!("{} MiB written collapsed now", len >> 20),
                Err(e) => format!(
                    "{} MiB written left to khugepaged (MADV_COLLAPSE: {e})",
                    len >> 20
                ),
            });
        }
    }
    if advised == 0 {
        return "4 KiB pages (smaller than one 2 MiB page)".to_owned();
    }
    let mut line = format!("transparent hugepages ({mode}) for {} MiB", advised >> 20);
    for note in collapsed {
        line.push_str(", ");
        line.push_str(&note);
    }
    line
}

/// The bracketed word of the sysfs setting, `always [madvise] never`.
fn selected_mode(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
}

/// The whole 2 MiB pages inside `region`.
fn huge_page_span(region: MemoryRegion) -> Option<(usize, usize)> {
    let start = region.start.checked_next_multiple_of(HUGE_PAGE)?;
    let end = (region.start.checked_add(region.len)?) / HUGE_PAGE * HUGE_PAGE;
    (end > start).then(|| (start, end - start))
}

fn madvise(start: usize, len: usize, advice: libc::c_int) -> io::Result<()> {
    // SAFETY: [start, start + len) lies inside memory a connection table owns for
    // its lifetime (one of its `memory_regions`), and these advices change only
    // which pages back it, never its contents.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, advice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_selected_mode() {
        assert_eq!(selected_mode("always [madvise] never\n"), Some("madvise"));
        assert_eq!(selected_mode("[always] madvise never"), Some("always"));
        assert_eq!(selected_mode("garbage"), None);
    }

    #[test]
    fn keeps_only_whole_huge_pages() {
        let region = |start, len| MemoryRegion {
            start,
            len,
            populated: false,
        };
        assert_eq!(
            huge_page_span(region(HUGE_PAGE, 2 * HUGE_PAGE)),
            Some((HUGE_PAGE, 2 * HUGE_PAGE))
        );
        assert_eq!(
            huge_page_span(region(16, 3 * HUGE_PAGE)),
            Some((HUGE_PAGE, 2 * HUGE_PAGE))
        );
        assert_eq!(huge_page_span(region(16, HUGE_PAGE)), None);
        assert_eq!(huge_page_span(region(usize::MAX - 8, 64)), None);
    }
}

//! Owned mbufs ([`Mbuf`]), fixed-size burst arrays ([`MbufArray`]) and frame
//! access for the core library.

use std::fmt;
use std::iter::FusedIterator;
use std::ptr::{self, NonNull};
use std::slice;

use dpdk_sys as sys;
use lb_core::frame::{Frame, ResizeError};

/// Mbufs per burst array.
pub const BURST: usize = 32;

/// Headroom DPDK reserves in front of the data of a freshly allocated mbuf.
pub const PKTMBUF_HEADROOM: usize = sys::RTE_PKTMBUF_HEADROOM as usize;

/// One owned packet buffer; dropping it returns it to its pool.
///
/// The frame helpers ([`Mbuf::data`], [`Mbuf::with_frame`], ...) see the first
/// segment only; check [`Mbuf::is_contiguous`] first if that matters.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an `Mbuf` is the only handle to its mbuf; DPDK allows freeing an
// mbuf from any thread (the pool is multi-producer/consumer and its per-lcore
// cache is picked by the freeing thread's own lcore id).
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` only allows reading the mbuf and its data.
unsafe impl Sync for Mbuf {}

impl Mbuf {
    /// Takes ownership of `ptr`.
    ///
    /// # Safety
    /// `ptr` must be a valid mbuf that nobody else uses or frees: reference count
    /// 1, its data buffer not shared (no clone or indirect mbuf points at it,
    /// no other mbuf is attached to the same external buffer area).
    #[inline]
    pub(super) unsafe fn from_raw(ptr: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf(ptr)
    }

    /// The raw mbuf, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &sys::rte_mbuf {
        // SAFETY: `self` owns a valid mbuf (see `from_raw`); nobody else writes it.
        unsafe { self.0.as_ref() }
    }

    /// Length of the data in the first segment (`data_len`).
    #[inline]
    pub fn len(&self) -> usize {
        usize::from(self.raw().data_len)
    }

    /// Whether the first segment holds no data.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw().data_len == 0
    }

    /// Length of the whole packet over all segments (`pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.raw().pkt_len
    }

    /// Whether the packet is in one segment (`nb_segs == 1`). Frame helpers
    /// cover only the first segment; multi-segment packets are normally dropped.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        let m = self.raw();
        m.nb_segs == 1 && m.next.is_null()
    }

    /// Number of segments.
    #[inline]
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// Offset of the data inside the buffer (`data_off`).
    #[inline]
    pub fn headroom(&self) -> usize {
        usize::from(self.raw().data_off)
    }

    /// Free bytes behind the data in the first segment.
    #[inline]
    pub fn tailroom(&self) -> usize {
        let m = self.raw();
        usize::from(m.buf_len).saturating_sub(usize::from(m.data_off) + usize::from(m.data_len))
    }

    /// The port the mbuf was received on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// The NIC's RSS hash, if the driver set one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & u64::from(sys::RTE_MBUF_F_RX_RSS_HASH) == 0 {
            return None;
        }
        // SAFETY: every variant of the hash union is plain integers, so reading
        // `rss` is defined whatever was written; RX_RSS_HASH says it is the RSS hash.
        Some(unsafe { m.__bindgen_anon_2.hash.rss })
    }

    /// The whole data buffer of the first segment and `(data_off, data_len)`.
    #[inline]
    fn room(&mut self) -> (&mut [u8], usize, usize) {
        let m = self.0.as_ptr();
        // SAFETY: `self` owns the mbuf exclusively (see `from_raw`); plain reads.
        let (addr, buf_len, off, len) = unsafe {
            (
                (*m).buf_addr.cast::<u8>(),
                usize::from((*m).buf_len),
                usize::from((*m).data_off),
                usize::from((*m).data_len),
            )
        };
        // SAFETY: an mbuf's buffer `buf_addr..buf_addr + buf_len` is valid memory
        // that belongs to this mbuf alone (exclusive ownership, see `from_raw`),
        // it does not overlap the `rte_mbuf` header, and `&mut self` keeps any
        // other access out for the slice's lifetime.
        let room = unsafe { slice::from_raw_parts_mut(addr, buf_len) };
        (room, off, len)
    }

    /// The frame's bytes (first segment).
    ///
    /// # Panics
    /// If the mbuf is corrupt (`data_off + data_len > buf_len`).
    #[inline]
    pub fn data(&self) -> &[u8] {
        let m = self.raw();
        let (off, len) = (usize::from(m.data_off), usize::from(m.data_len));
        assert!(off + len <= usize::from(m.buf_len), "corrupt mbuf");
        // SAFETY: `buf_addr + off .. + len` lies inside the mbuf's buffer (checked
        // above), which this handle owns; `&self` rules out writers.
        unsafe { slice::from_raw_parts(m.buf_addr.cast::<u8>().add(off), len) }
    }

    /// The frame's bytes (first segment), writable.
    ///
    /// # Panics
    /// If the mbuf is corrupt (`data_off + data_len > buf_len`).
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (room, off, len) = self.room();
        &mut room[off..off + len]
    }

    /// Lends the first segment to `f` as a [`Frame`] over the whole buffer
    /// (head = `data_off`, len = `data_len`), then stores the frame's new head
    /// and length in `data_off`, `data_len` and `pkt_len` (which changes by the
    /// same amount as `data_len`). If `f` panics the mbuf keeps its old
    /// offsets (the bytes may have been changed).
    ///
    /// To build a packet in a fresh mbuf from [`super::Mempool::alloc`]: the
    /// frame starts empty at head [`PKTMBUF_HEADROOM`]; call `frame.set_len(n)`
    /// and write `frame.data_mut()`.
    ///
    /// # Panics
    /// If the mbuf is corrupt (`data_off + data_len > buf_len`).
    #[inline]
    pub fn with_frame<R>(&mut self, f: impl FnOnce(&mut Frame<'_>) -> R) -> R {
        let (room, off, old_len) = self.room();
        let (result, head, len) = {
            let mut frame = Frame::new(room, off, old_len);
            let result = f(&mut frame);
            (result, frame.head(), frame.len())
        };
        let m = self.0.as_ptr();
        // SAFETY: `self` owns the mbuf exclusively; the frame's borrow of the
        // buffer has ended. head + len <= buf_len <= u16::MAX (Frame keeps it
        // inside the buffer), so the narrowing casts are lossless.
        unsafe {
            (*m).data_off = head as u16;
            (*m).data_len = len as u16;
            (*m).pkt_len = (*m)
                .pkt_len
                .wrapping_sub(old_len as u32)
                .wrapping_add(len as u32);
        }
        result
    }

    /// Sets the length of the first segment (growing into the tailroom; new bytes
    /// are unspecified), adjusting `pkt_len` alike.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> Result<(), ResizeError> {
        self.with_frame(|frame| frame.set_len(len))
    }

    /// Gives up ownership without freeing.
    #[inline]
    pub(super) fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let ptr = self.0;
        std::mem::forget(self);
        ptr
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `self` owns the mbuf (and the chain behind it); it is freed once.
        unsafe { sys::rte_pktmbuf_free(self.0.as_ptr()) };
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.raw();
        f.debug_struct("Mbuf")
            .field("ptr", &self.0)
            .field("data_off", &m.data_off)
            .field("data_len", &m.data_len)
            .field("pkt_len", &m.pkt_len)
            .field("nb_segs", &m.nb_segs)
            .field("port", &m.port)
            .finish()
    }
}

/// Up to [`BURST`] owned mbufs in a fixed array: the unit of RX and TX bursts.
/// No allocation; dropping it frees the mbufs it holds.
pub struct MbufArray {
    /// Invariant: `ptrs[..len]` are valid mbufs owned by this array, distinct.
    ptrs: [*mut sys::rte_mbuf; BURST],
    len: usize,
}

// SAFETY: the array owns its mbufs exclusively, like `Mbuf` (which is Send).
unsafe impl Send for MbufArray {}
// SAFETY: `&MbufArray` only gives `&Mbuf`s, which are Sync.
unsafe impl Sync for MbufArray {}

impl MbufArray {
    /// An empty array.
    #[inline]
    pub const fn new() -> MbufArray {
        MbufArray {
            ptrs: [ptr::null_mut(); BURST],
            len: 0,
        }
    }

    /// Number of mbufs held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the array holds no mbufs.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the array holds [`BURST`] mbufs.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    /// Free slots.
    #[inline]
    pub fn spare(&self) -> usize {
        BURST - self.len
    }

    /// Appends `mbuf`, or hands it back if the array is full.
    #[inline]
    pub fn push(&mut self, mbuf: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            return Err(mbuf);
        }
        self.ptrs[self.len] = mbuf.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Takes the last mbuf out.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let ptr = self.ptrs[self.len];
        // SAFETY: `ptrs[len]` was owned by the array (non-null by the invariant)
        // and is no longer counted in it, so ownership moves to the `Mbuf`.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(ptr)) })
    }

    /// The mbufs, in order.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: `Mbuf` is repr(transparent) over `NonNull<rte_mbuf>`, which has
        // the layout of `*mut rte_mbuf`; `ptrs[..len]` are non-null and owned by
        // the array, so they may be viewed as `Mbuf`s borrowed from it.
        unsafe { slice::from_raw_parts(self.ptrs.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The mbufs, in order, for processing in place. (Swapping one for another
    /// `Mbuf` through the `&mut` is fine: the array owns whatever is in a slot.)
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`; `&mut self` makes the borrow exclusive.
        unsafe { slice::from_raw_parts_mut(self.ptrs.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Moves all mbufs out, in order, leaving the array empty. Mbufs the
    /// iterator does not yield are freed when it is dropped.
    #[inline]
    pub fn drain(&mut self) -> Drain<'_> {
        let end = self.len;
        self.len = 0;
        Drain {
            array: self,
            pos: 0,
            end,
        }
    }

    /// Frees all mbufs.
    #[inline]
    pub fn clear(&mut self) {
        let n = self.len;
        self.len = 0;
        free_bulk(&mut self.ptrs[..n]);
    }

    /// The free slots, for a driver to fill; see [`MbufArray::commit`].
    #[inline]
    pub(super) fn spare_ptr(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        // `len <= BURST`, so the pointer stays inside (or one past) the array.
        (self.ptrs[self.len..].as_mut_ptr(), BURST - self.len)
    }

    /// Counts `n` more slots (filled through [`MbufArray::spare_ptr`]) as held.
    ///
    /// # Safety
    /// The `n` slots after the held ones must now hold distinct valid mbufs
    /// owned by nobody else; `n <= spare()`.
    #[inline]
    pub(super) unsafe fn commit(&mut self, n: usize) {
        debug_assert!(n <= self.spare());
        self.len += n;
    }

    /// The held mbufs as raw pointers, and the count, for a driver to take.
    #[inline]
    pub(super) fn held_ptr(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        (self.ptrs.as_mut_ptr(), self.len)
    }

    /// After a driver took the first `taken` held mbufs: forgets those, keeping
    /// the rest (moved to the front).
    ///
    /// # Safety
    /// The driver must own the first `taken` mbufs now; `taken <= len()`.
    #[inline]
    pub(super) unsafe fn consume_front(&mut self, taken: usize) {
        debug_assert!(taken <= self.len);
        self.ptrs.copy_within(taken..self.len, 0);
        self.len -= taken;
    }
}

/// A received burst, as the worker's pipeline reads it. Chained mbufs show their
/// first segment only, which the worker's parse refuses as truncated.
impl lb_core::worker::Burst for MbufArray {
    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn data(&self, i: usize) -> &[u8] {
        self.as_slice()[i].data()
    }

    #[inline]
    fn with_frame<R>(&mut self, i: usize, f: impl FnOnce(&mut Frame<'_>) -> R) -> R {
        self.as_mut_slice()[i].with_frame(f)
    }
}

impl Default for MbufArray {
    fn default() -> Self {
        MbufArray::new()
    }
}

impl Drop for MbufArray {
    fn drop(&mut self) {
        self.clear();
    }
}

impl fmt::Debug for MbufArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Frees mbufs with one call.
#[inline]
fn free_bulk(ptrs: &mut [*mut sys::rte_mbuf]) {
    if ptrs.is_empty() {
        return;
    }
    // SAFETY: callers pass owned, distinct, valid mbufs that they stop counting;
    // `ptrs.len() <= BURST` fits the C unsigned int.
    unsafe { sys::rte_pktmbuf_free_bulk(ptrs.as_mut_ptr(), ptrs.len() as u32) };
}

/// Iterator that moves the mbufs out of an [`MbufArray`]; see
/// [`MbufArray::drain`].
pub struct Drain<'a> {
    /// `array.ptrs[pos..end]` are owned by the iterator (the array's `len` is 0).
    array: &'a mut MbufArray,
    pos: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.pos == self.end {
            return None;
        }
        let ptr = self.array.ptrs[self.pos];
        self.pos += 1;
        // SAFETY: slot `pos` was owned by the iterator (a valid, non-null mbuf)
        // and is no longer counted, so ownership moves to the `Mbuf`.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(ptr)) })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.pos;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Drain<'_> {}
impl FusedIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let (pos, end) = (self.pos, self.end);
        self.pos = end;
        free_bulk(&mut self.array.ptrs[pos..end]);
    }
}

impl fmt::Debug for Drain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drain")
            .field("remaining", &(self.end - self.pos))
            .finish()
    }
}

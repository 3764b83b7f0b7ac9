//! A frame in a buffer with head- and tailroom, so that rewrites which grow or
//! shrink a packet (encapsulation, TOA, PROXY headers) work in place on an mbuf.

/// Why a frame could not be resized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeError {
    /// Not enough headroom in front of the frame.
    NoHeadroom,
    /// Not enough tailroom behind the frame.
    NoTailroom,
    /// The requested range lies outside the frame.
    OutOfRange,
}

/// A view of one packet: `room[head..head + len]` are the frame's bytes; the rest of
/// `room` is free space the frame may grow into.
#[derive(Debug)]
pub struct Frame<'a> {
    room: &'a mut [u8],
    head: usize,
    len: usize,
}

impl<'a> Frame<'a> {
    /// Wraps `room`, whose bytes `head..head + len` hold the frame.
    ///
    /// # Panics
    /// If the frame does not fit in `room` (a caller bug, never packet data).
    pub fn new(room: &'a mut [u8], head: usize, len: usize) -> Self {
        assert!(head.checked_add(len).is_some_and(|end| end <= room.len()));
        Frame { room, head, len }
    }

    /// A frame filling the whole buffer, with no head- or tailroom.
    pub fn from_slice(bytes: &'a mut [u8]) -> Self {
        let len = bytes.len();
        Frame::new(bytes, 0, len)
    }

    /// Offset of the first frame byte inside the buffer (the mbuf's data offset).
    pub fn head(&self) -> usize {
        self.head
    }

    /// Length of the frame in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        &self.room[self.head..self.head + self.len]
    }

    /// The frame's bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.room[self.head..self.head + self.len]
    }

    /// Free bytes behind the frame.
    pub fn tailroom(&self) -> usize {
        self.room.len() - self.head - self.len
    }

    /// Sets the frame length, growing into the tailroom (new bytes are unspecified).
    pub fn set_len(&mut self, len: usize) -> Result<(), ResizeError> {
        if self.head + len > self.room.len() {
            return Err(ResizeError::NoTailroom);
        }
        self.len = len;
        Ok(())
    }

    /// Opens `n` bytes at `offset` by moving what follows towards the tail.
    /// The opened bytes keep whatever they held; the caller writes them.
    pub fn insert_gap(&mut self, offset: usize, n: usize) -> Result<(), ResizeError> {
        if offset > self.len {
            return Err(ResizeError::OutOfRange);
        }
        if self.tailroom() < n {
            return Err(ResizeError::NoTailroom);
        }
        let start = self.head + offset;
        let end = self.head + self.len;
        self.room.copy_within(start..end, start + n);
        self.len += n;
        Ok(())
    }

    /// Opens `n` bytes at `offset` by moving what precedes it towards the head, for
    /// rewrites near the front of the frame (an encapsulation header after Ethernet).
    pub fn insert_gap_front(&mut self, offset: usize, n: usize) -> Result<(), ResizeError> {
        if offset > self.len {
            return Err(ResizeError::OutOfRange);
        }
        if self.head < n {
            return Err(ResizeError::NoHeadroom);
        }
        let start = self.head;
        self.room.copy_within(start..start + offset, start - n);
        self.head -= n;
        self.len += n;
        Ok(())
    }

    /// Removes `n` bytes at `offset`, moving the bytes in front of them backwards.
    pub fn remove_front(&mut self, offset: usize, n: usize) -> Result<(), ResizeError> {
        if offset.checked_add(n).is_none_or(|end| end > self.len) {
            return Err(ResizeError::OutOfRange);
        }
        let start = self.head;
        self.room.copy_within(start..start + offset, start + n);
        self.head += n;
        self.len -= n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_move_the_right_bytes() {
        let mut room = [0u8; 16];
        room[4..8].copy_from_slice(&[1, 2, 3, 4]);
        let mut frame = Frame::new(&mut room, 4, 4);
        frame.insert_gap(2, 2).unwrap();
        frame.data_mut()[2..4].copy_from_slice(&[9, 9]);
        assert_eq!(frame.data(), &[1, 2, 9, 9, 3, 4]);
        frame.insert_gap_front(1, 2).unwrap();
        frame.data_mut()[1..3].copy_from_slice(&[7, 7]);
        assert_eq!(frame.data(), &[1, 7, 7, 2, 9, 9, 3, 4]);
        assert_eq!(frame.head(), 2);
        frame.remove_front(1, 2).unwrap();
        assert_eq!(frame.data(), &[1, 2, 9, 9, 3, 4]);
    }

    #[test]
    fn resizing_beyond_the_buffer_fails() {
        let mut room = [0u8; 8];
        let mut frame = Frame::new(&mut room, 0, 8);
        assert_eq!(frame.insert_gap(0, 1), Err(ResizeError::NoTailroom));
        assert_eq!(frame.insert_gap_front(0, 1), Err(ResizeError::NoHeadroom));
        assert_eq!(frame.remove_front(7, 2), Err(ResizeError::OutOfRange));
    }
}

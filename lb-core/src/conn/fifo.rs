//! An intrusive FIFO over dense slot indexes (the connection slab's): links live
//! in arrays beside the slab, so pushing, unlinking from the middle and taking the
//! oldest are O(1) and never allocate. The table keeps its half-open connections
//! in one, so the oldest can give its place up under pressure.

const NIL: u32 = u32::MAX;

/// Slots in arrival order; each slot is in the FIFO at most once.
#[derive(Debug)]
pub struct SlotFifo {
    next: Box<[u32]>,
    prev: Box<[u32]>,
    linked: Box<[bool]>,
    head: u32,
    tail: u32,
    len: usize,
}

impl SlotFifo {
    /// A FIFO for slots `0..capacity`.
    pub fn new(capacity: usize) -> Self {
        SlotFifo {
            next: vec![NIL; capacity].into_boxed_slice(),
            prev: vec![NIL; capacity].into_boxed_slice(),
            linked: vec![false; capacity].into_boxed_slice(),
            head: NIL,
            tail: NIL,
            len: 0,
        }
    }

    /// Slots in the FIFO.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends `slot` (the newest); nothing happens if it is in already.
    pub fn push(&mut self, slot: u32) {
        let i = slot as usize;
        if self.linked[i] {
            return;
        }
        self.linked[i] = true;
        self.prev[i] = self.tail;
        self.next[i] = NIL;
        match self.tail {
            NIL => self.head = slot,
            t => self.next[t as usize] = slot,
        }
        self.tail = slot;
        self.len += 1;
    }

    /// Takes `slot` out; nothing happens if it is not in.
    pub fn remove(&mut self, slot: u32) {
        let i = slot as usize;
        if !self.linked[i] {
            return;
        }
        let (p, n) = (self.prev[i], self.next[i]);
        match p {
            NIL => self.head = n,
            p => self.next[p as usize] = n,
        }
        match n {
            NIL => self.tail = p,
            n => self.prev[n as usize] = p,
        }
        self.linked[i] = false;
        self.len -= 1;
    }

    /// The oldest slot, left in place.
    pub fn oldest(&self) -> Option<u32> {
        (self.head != NIL).then_some(self.head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(f: &mut SlotFifo) -> Vec<u32> {
        let mut out = Vec::new();
        while let Some(s) = f.oldest() {
            f.remove(s);
            out.push(s);
        }
        out
    }

    #[test]
    fn keeps_arrival_order_through_removals() {
        let mut f = SlotFifo::new(8);
        for s in [3, 1, 4, 5, 2] {
            f.push(s);
        }
        f.push(4); // already in: keeps its place
        f.remove(4);
        f.remove(3); // the head
        f.remove(2); // the tail
        f.remove(7); // never in
        assert_eq!(f.len(), 2);
        f.push(6);
        f.push(3);
        assert_eq!(drain(&mut f), [1, 5, 6, 3]);
        assert_eq!(f.len(), 0);
        assert_eq!(f.oldest(), None);
    }
}

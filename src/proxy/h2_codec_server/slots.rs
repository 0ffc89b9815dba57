//! The streams of one connection in a slab, each slot with a waker of its
//! own that queues the slot for the connection's task: the task polls only
//! the streams that were woken, as `FuturesUnordered` does for
//! `h2_server`, but the wakers belong to the slots (made once per slot and
//! kept for the connection's life: no allocation per stream) and a slot's
//! stream is found by its HTTP/2 stream id without hashing (ids only grow:
//! a sorted vector, binary search).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Wake, Waker};

use futures_util::task::AtomicWaker;

/// The slots woken since the connection's task last looked, and that
/// task's waker.
#[derive(Default)]
struct Ready {
    woken: Mutex<Vec<usize>>,
    task: AtomicWaker,
}

/// A poisoned lock still holds plain indices.
fn lock(m: &Mutex<Vec<usize>>) -> MutexGuard<'_, Vec<usize>> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct SlotWaker {
    index: usize,
    /// Queued and not yet taken: a second wake adds nothing.
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            lock(&self.ready.woken).push(self.index);
            self.ready.task.wake();
        }
    }
}

/// A slot's waker: the slot's own, and the one its stream's futures see.
struct Slot<T> {
    waker: Arc<SlotWaker>,
    /// `waker` as a `Waker` (made once).
    as_waker: Waker,
    value: Option<T>,
}

/// The streams (see the module comment).
pub(super) struct Slots<T> {
    ready: Arc<Ready>,
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
    /// (stream id, slot), sorted by id.
    ids: Vec<(u32, usize)>,
    /// The indices taken from `ready`, kept for their capacity.
    taken: Vec<usize>,
}

impl<T> Slots<T> {
    pub(super) fn new() -> Slots<T> {
        Slots {
            ready: Arc::default(),
            slots: Vec::new(),
            free: Vec::new(),
            ids: Vec::new(),
            taken: Vec::new(),
        }
    }

    /// The connection's task: woken when a slot is.
    pub(super) fn register(&self, cx: &Context<'_>) {
        self.ready.task.register(cx.waker());
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Add stream `id`, queued to be polled.
    #[cfg(test)]
    pub(super) fn insert(&mut self, id: u32, value: T) -> usize {
        self.insert_with(id, |_| value)
    }

    /// Add stream `id`, its value made with the waker its futures will
    /// see, queued to be polled.
    pub(super) fn insert_with(&mut self, id: u32, make: impl FnOnce(&Waker) -> T) -> usize {
        let index = match self.free.pop() {
            Some(i) if i < self.slots.len() => i,
            _ => {
                let index = self.slots.len();
                let waker = Arc::new(SlotWaker {
                    index,
                    queued: AtomicBool::new(false),
                    ready: self.ready.clone(),
                });
                self.slots.push(Slot {
                    as_waker: Waker::from(waker.clone()),
                    waker,
                    value: None,
                });
                index
            }
        };
        if let Some(s) = self.slots.get_mut(index) {
            s.value = Some(make(&s.as_waker));
        }
        match self.ids.last() {
            Some((last, _)) if *last >= id => {
                let at = self.ids.partition_point(|(i, _)| *i < id);
                self.ids.insert(at, (id, index));
            }
            _ => self.ids.push((id, index)),
        }
        self.wake(index);
        index
    }

    /// The slot of stream `id`.
    pub(super) fn index_of(&self, id: u32) -> Option<usize> {
        let at = self.ids.binary_search_by_key(&id, |(i, _)| *i).ok()?;
        self.ids.get(at).map(|(_, index)| *index)
    }

    pub(super) fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.slots.get_mut(index)?.value.as_mut()
    }

    /// The value in slot `index` and the waker its futures see.
    pub(super) fn get_with_waker(&mut self, index: usize) -> Option<(&mut T, &Waker)> {
        let s = self.slots.get_mut(index)?;
        Some((s.value.as_mut()?, &s.as_waker))
    }

    /// Take stream `id`'s value out; its slot is free again (a wake still
    /// on its way polls whatever takes the slot next: harmless).
    pub(super) fn remove(&mut self, id: u32) -> Option<T> {
        let at = self.ids.binary_search_by_key(&id, |(i, _)| *i).ok()?;
        let (_, index) = self.ids.remove(at);
        let value = self.slots.get_mut(index)?.value.take();
        self.free.push(index);
        value
    }

    /// Every stream's value, taken out (the connection ends).
    pub(super) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.ids.clear();
        self.free.clear();
        self.free.extend(0..self.slots.len());
        self.slots.iter_mut().filter_map(|s| s.value.take())
    }

    /// Queue slot `index` to be polled, from the connection's own task
    /// (which is running: it is not woken again).
    pub(super) fn wake(&self, index: usize) {
        if let Some(s) = self.slots.get(index)
            && !s.waker.queued.swap(true, Ordering::AcqRel)
        {
            lock(&self.ready.woken).push(index);
        }
    }

    /// The slots woken since the last call, in the order they were woken;
    /// each may be woken again from now on. Give the vector back with
    /// [`Slots::give_back`].
    pub(super) fn take_woken(&mut self) -> Vec<usize> {
        let mut taken = std::mem::take(&mut self.taken);
        taken.clear();
        std::mem::swap(&mut *lock(&self.ready.woken), &mut taken);
        for &i in &taken {
            if let Some(s) = self.slots.get(i) {
                s.waker.queued.store(false, Ordering::Release);
            }
        }
        taken
    }

    pub(super) fn give_back(&mut self, taken: Vec<usize>) {
        self.taken = taken;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_woken_slots_are_taken_once_each() {
        let mut s = Slots::new();
        let a = s.insert(1, 'a');
        let b = s.insert(3, 'b');
        assert_eq!(s.take_woken(), vec![a, b]);
        assert!(s.take_woken().is_empty());
        s.wake(b);
        s.wake(b);
        assert_eq!(s.take_woken(), vec![b]);
        assert_eq!(s.index_of(3), Some(b));
        assert_eq!(s.remove(1), Some('a'));
        assert_eq!(s.index_of(1), None);
        // The free slot is reused, its waker with it.
        let c = s.insert(5, 'c');
        assert_eq!(c, a);
        assert_eq!(s.get_mut(c), Some(&mut 'c'));
        let (_, waker) = s.get_with_waker(c).unwrap();
        waker.wake_by_ref();
        let woken = s.take_woken();
        assert_eq!(woken, vec![c]);
        s.give_back(woken);
        assert_eq!(s.drain().count(), 2);
        assert!(s.is_empty());
    }
}

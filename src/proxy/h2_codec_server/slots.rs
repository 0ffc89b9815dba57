//! The streams of one connection in a slab, each slot with a waker of its
//! own that queues the slot for the connection's task: the task polls only
//! the streams that were woken, as `FuturesUnordered` does for
//! `h2_server`, but the wakers belong to the slots (made once per slot and
//! kept for the connection's life: no allocation per stream) and a slot's
//! stream is found by its HTTP/2 stream id without hashing (ids only grow:
//! a sorted vector, binary search).
//!
//! The woken slots form a list without a lock (a Treiber stack of slot
//! indices, linked through each slot's waker): a wake pushes its slot
//! with one compare-and-swap on the head, the connection's task takes the
//! whole list with one swap and walks it. Safe code and atomics only. A
//! slot is in the list at most once (its `queued` flag), and the task
//! reads a slot's link before it clears the flag, so a wake that pushes
//! the slot again (into the next list) never changes a link still to be
//! read; the task only ever takes the whole list, so the head's value
//! cannot be recycled under a pushing waker (no ABA).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};

use futures_util::task::AtomicWaker;

/// The end of the list of woken slots.
const NONE: usize = usize::MAX;

/// The slots woken since the connection's task last looked, and that
/// task's waker.
struct Ready {
    /// The slot woken last (`NONE`: none); each links to the one woken
    /// before it.
    head: AtomicUsize,
    task: AtomicWaker,
}

impl Default for Ready {
    fn default() -> Ready {
        Ready {
            head: AtomicUsize::new(NONE),
            task: AtomicWaker::new(),
        }
    }
}

struct SlotWaker {
    index: usize,
    /// Queued and not yet taken: a second wake adds nothing.
    queued: AtomicBool,
    /// The slot woken before this one (while queued).
    next: AtomicUsize,
    ready: Arc<Ready>,
}

impl SlotWaker {
    /// Queue the slot; whether it was not queued already.
    fn queue(&self) -> bool {
        if self.queued.swap(true, Ordering::AcqRel) {
            return false;
        }
        let head = &self.ready.head;
        let mut last = head.load(Ordering::Relaxed);
        loop {
            self.next.store(last, Ordering::Relaxed);
            // Release: the link is seen by whoever takes the list.
            match head.compare_exchange_weak(last, self.index, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => last = now,
            }
        }
    }
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queue() {
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
                    next: AtomicUsize::new(NONE),
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
        if let Some(s) = self.slots.get(index) {
            s.waker.queue();
        }
    }

    /// The slots woken since the last call, in the order they were woken;
    /// each may be woken again from now on. Give the vector back with
    /// [`Slots::give_back`].
    pub(super) fn take_woken(&mut self) -> Vec<usize> {
        let mut taken = std::mem::take(&mut self.taken);
        taken.clear();
        // Acquire: every link pushed before is visible (the pushes'
        // compare-and-swaps continue one release sequence).
        let mut at = self.ready.head.swap(NONE, Ordering::Acquire);
        while let Some(s) = self.slots.get(at) {
            // The link first: once the flag is clear, a wake may push the
            // slot again and rewrite it.
            let next = s.waker.next.load(Ordering::Relaxed);
            taken.push(at);
            s.waker.queued.store(false, Ordering::Release);
            at = next;
        }
        // Pushed last first: polled in the order they were woken.
        taken.reverse();
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

    /// Wakes from other threads, racing with the task taking the list:
    /// every wake after a take is seen by a later take, no slot is taken
    /// twice in one, and none is lost.
    #[test]
    fn wakes_from_other_threads_are_never_lost_or_doubled() {
        const SLOTS: usize = 64;
        const ROUNDS: usize = 2000;
        let mut s = Slots::new();
        for id in 0..SLOTS as u32 {
            s.insert(2 * id + 1, ());
        }
        let _ = s.take_woken();
        let wakers: Vec<Waker> = (0..SLOTS)
            .map(|i| s.get_with_waker(i).unwrap().1.clone())
            .collect();
        let done = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (wakers, done) = (&wakers, &done);
                scope.spawn(move || {
                    for r in 0..ROUNDS {
                        wakers[(r * 7 + t * 13) % SLOTS].wake_by_ref();
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                });
            }
            let mut seen = 0usize;
            loop {
                let finished = done.load(Ordering::SeqCst) == 4;
                let woken = s.take_woken();
                let mut sorted = woken.clone();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(sorted.len(), woken.len(), "a slot taken twice");
                assert!(woken.iter().all(|&i| i < SLOTS));
                seen += woken.len();
                s.give_back(woken);
                if finished && seen > 0 {
                    break;
                }
            }
        });
        // After the threads, one wake of every slot is seen exactly once.
        for w in &wakers {
            w.wake_by_ref();
        }
        let mut all = s.take_woken();
        all.sort_unstable();
        assert_eq!(all, (0..SLOTS).collect::<Vec<_>>());
    }
}

//! Per-connection deadlines (first request, request head, idle, stalled
//! streams) from the timestamps reads and writes store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::DownstreamLimits;
use super::clock::{ms, now_ms};
use super::conn::{ConnState, STREAM_WAITING};

/// Why the watchdog ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Expired {
    /// No first request, or no complete HTTP/1 head since its first byte,
    /// within the request-headers timeout: close gracefully (GOAWAY),
    /// briefly.
    NoRequest = 1,
    /// Requests in flight but no bytes either way past the stream idle
    /// timeout (a client that stopped reading, or every stream stalled):
    /// close now.
    StreamsIdle = 2,
    /// Nothing in flight past the idle timeout: close gracefully (GOAWAY).
    Idle = 3,
}

impl Expired {
    /// As [`ConnState`] keeps it (0: not expired).
    pub(super) fn from_u8(v: u8) -> Option<Expired> {
        match v {
            1 => Some(Expired::NoRequest),
            2 => Some(Expired::StreamsIdle),
            3 => Some(Expired::Idle),
            _ => None,
        }
    }
}

/// Off: a deadline that never comes (every rule is plain milliseconds).
const OFF: u64 = u64::MAX;

/// The deadlines of a listener's connections, in milliseconds ([`OFF`]:
/// none), the same for every connection: one copy per listener, none per
/// connection.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    header_ms: u64,
    idle_ms: u64,
    streams_ms: u64,
    /// The request path's stream idle timeout, which the patrol keeps for
    /// body-less HTTP/1.1 requests (no timer per request).
    stream_idle_ms: u64,
    /// Never sleep longer than this, so a rule that starts to apply while
    /// asleep (a request began) is checked at most this late.
    max_sleep_ms: u64,
}

impl Rules {
    pub fn new(limits: &DownstreamLimits) -> Rules {
        // The request path answers 408/504 at the stream idle timeout; the
        // connection-level rule must come later so that answer goes first.
        let streams_ms = limits
            .stream_idle_timeout
            .map_or(OFF, |t| ms(t).saturating_add(ms(t) / 4).saturating_add(50));
        let header_ms = limits.request_headers_timeout.map_or(OFF, ms);
        let idle_ms = limits.idle_timeout.map_or(OFF, ms);
        let stream_idle_ms = limits.stream_idle_timeout.map_or(OFF, ms);
        let shortest = header_ms.min(idle_ms).min(streams_ms).min(stream_idle_ms);
        let shortest = if shortest == OFF { 15_000 } else { shortest };
        Rules {
            header_ms,
            idle_ms,
            streams_ms,
            stream_idle_ms,
            max_sleep_ms: (shortest / 4).clamp(5, 15_000),
        }
    }

    fn any(&self) -> bool {
        self.shortest() != OFF
    }

    fn shortest(&self) -> u64 {
        self.header_ms
            .min(self.idle_ms)
            .min(self.streams_ms)
            .min(self.stream_idle_ms)
    }

    /// A waiting request's stream idle clock on `s` now: marked expired
    /// past the timeout, else how long until it would be. Every new clock
    /// is seen within `max_sleep` (a quarter of the timeout at most), then
    /// met within a round.
    fn check_stream(&self, s: &ConnState, now: u64) -> u64 {
        if self.stream_idle_ms == OFF || s.stream.load(Ordering::Relaxed) != STREAM_WAITING {
            return OFF;
        }
        let quiet = now.saturating_sub(s.last_io_ms.load(Ordering::Relaxed));
        if quiet >= self.stream_idle_ms {
            s.expire_stream();
            return OFF;
        }
        self.stream_idle_ms - quiet
    }

    /// The verdict on `s` now, or how long to sleep before asking again.
    fn check(&self, s: &ConnState, now: u64) -> Result<u64, Expired> {
        let last = s.last_io_ms.load(Ordering::Relaxed);
        let idle_for = now.saturating_sub(last);
        let mut next = self.max_sleep_ms;
        if !s.requested.load(Ordering::Relaxed) && self.header_ms != OFF {
            // From accept, not from the last byte: a trickle must not reset it.
            let age = now.saturating_sub(s.accepted_ms);
            if age >= self.header_ms {
                return Err(Expired::NoRequest);
            }
            next = next.min(self.header_ms - age);
        }
        let head_since = s.head_since_ms.load(Ordering::Relaxed);
        if head_since != 0 && self.header_ms != OFF {
            let age = now.saturating_sub(head_since);
            if age >= self.header_ms {
                return Err(Expired::NoRequest);
            }
            next = next.min(self.header_ms - age);
        }
        let (rule, verdict) = if s.in_flight.load(Ordering::Relaxed) > 0 {
            (self.streams_ms, Expired::StreamsIdle)
        } else {
            (self.idle_ms, Expired::Idle)
        };
        if rule != OFF {
            if idle_for >= rule {
                return Err(verdict);
            }
            next = next.min(rule - idle_for);
        }
        Ok(next.max(1))
    }
}

/// One connection's deadlines, checked by sleeping until the nearest one
/// (HTTP/2 and hyper's connections: few, and busy; strait's HTTP/1.1
/// connections are watched by their listener's [`Patrol`] instead).
pub struct Watchdog {
    state: Arc<ConnState>,
    rules: Rules,
}

impl Watchdog {
    pub fn new(limits: &DownstreamLimits, state: Arc<ConnState>) -> Watchdog {
        Watchdog {
            state,
            rules: Rules::new(limits),
        }
    }

    #[cfg(test)]
    fn check(&self, now: u64) -> Result<u64, Expired> {
        self.rules.check(&self.state, now)
    }

    /// Resolves when the connection should end.
    pub async fn expired(&self) -> Expired {
        if !self.rules.any() {
            return std::future::pending().await;
        }
        loop {
            match self.rules.check(&self.state, now_ms()) {
                Err(e) => return e,
                Ok(wait) => tokio::time::sleep(Duration::from_millis(wait)).await,
            }
        }
    }
}

/// The HTTP/1.1 connections of one listener on one worker, and their
/// deadlines checked by one task for them all, as nginx and HAProxy check
/// theirs once per turn of their loop: a connection holds no timer (a
/// tokio `Sleep` is ~160 bytes of its task, and each woke it every
/// `max_sleep`), only its place in the list, and the drain wakes every
/// connection from here (no `watch::changed` future per connection either).
/// What a connection did last is in its [`ConnState`] (atomics its reads
/// and writes store); the patrol reads them and, past a deadline, marks
/// the state and wakes the connection's task.
pub struct Patrol {
    rules: Rules,
    /// The least time between two rounds (the shortest rule / 32, at most
    /// a second): a round reads every connection, so rounds are coarse;
    /// a deadline is met at most this late.
    round_ms: u64,
    draining: AtomicBool,
    list: Mutex<List>,
    /// A first connection after none, or the drain: the patrol wakes.
    wake: Notify,
    /// The drain signal, for the protocols a connection is handed to.
    stop: watch::Receiver<bool>,
}

#[derive(Default)]
struct List {
    states: Vec<Option<Arc<ConnState>>>,
    free: Vec<u32>,
    len: usize,
    /// Drained: no connection comes after the last one leaves.
    closed: bool,
}

impl Patrol {
    /// The patrol of a listener draining on `stop`; its task runs on the
    /// caller's runtime while the listener or any of its connections does.
    pub fn start(limits: &DownstreamLimits, stop: watch::Receiver<bool>) -> Arc<Patrol> {
        let rules = Rules::new(limits);
        let shortest = rules.shortest();
        let patrol = Arc::new(Patrol {
            rules,
            round_ms: (shortest / 32).clamp(1, 1000),
            draining: AtomicBool::new(false),
            list: Mutex::new(List::default()),
            wake: Notify::new(),
            stop,
        });
        tokio::spawn(crate::proxy::clock::Clocked::new(patrol.clone().run()));
        patrol
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, List> {
        self.list.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watch a new connection until the guard is dropped.
    pub fn watch(self: &Arc<Self>, state: Arc<ConnState>) -> Watched {
        state.patrolled.store(true, Ordering::Relaxed);
        let mut list = self.lock();
        let key = match list.free.pop() {
            Some(k) => {
                list.states[k as usize] = Some(state);
                k
            }
            None => {
                list.states.push(Some(state));
                u32::try_from(list.states.len() - 1).unwrap_or(u32::MAX)
            }
        };
        list.len += 1;
        if list.len == 1 {
            self.wake.notify_one();
        }
        Watched {
            patrol: self.clone(),
            key,
        }
    }

    /// Stop taking connections: each is woken to close if it waits for a
    /// request, or to finish the one in flight; the patrol ends with the
    /// last of them.
    pub fn drain(&self) {
        let mut list = self.lock();
        list.closed = true;
        self.draining.store(true, Ordering::Release);
        for s in list.states.iter().flatten() {
            s.waker.wake();
        }
        drop(list);
        self.wake.notify_one();
    }

    /// The drain signal (for a connection handed to another server).
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// One round over the connections at `now`: the expired ones marked
    /// and woken. How long until the next round (`None`: no connections).
    fn round(&self, now: u64) -> Option<u64> {
        let list = self.lock();
        if list.len == 0 {
            return None;
        }
        let mut next = self.rules.max_sleep_ms;
        for s in list.states.iter().flatten() {
            if s.expired.load(Ordering::Relaxed) != 0 {
                continue;
            }
            match self.rules.check(s, now) {
                Ok(wait) => next = next.min(wait).min(self.rules.check_stream(s, now)),
                Err(e) => s.expire(e),
            }
        }
        Some(next.max(self.round_ms))
    }

    async fn run(self: Arc<Self>) {
        loop {
            match self.round(now_ms()) {
                Some(_) if !self.rules.any() => self.wake.notified().await,
                Some(wait) => tokio::time::sleep(Duration::from_millis(wait)).await,
                None if self.lock().closed => return,
                None => self.wake.notified().await,
            }
        }
    }
}

/// A connection on its listener's [`Patrol`] (taken off when dropped).
pub struct Watched {
    patrol: Arc<Patrol>,
    key: u32,
}

impl Watched {
    /// Whether the listener drains: a connection waiting for a request
    /// closes, one with a request in flight closes after it.
    pub fn draining(&self) -> bool {
        self.patrol.draining.load(Ordering::Acquire)
    }

    pub fn patrol(&self) -> &Patrol {
        &self.patrol
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let mut list = self.patrol.lock();
        let k = self.key as usize;
        if let Some(Some(s)) = list.states.get_mut(k).map(Option::take) {
            // The task's waker, which the task is about to leave.
            s.waker.take();
            s.patrolled.store(false, Ordering::Relaxed);
            list.free.push(self.key);
            list.len -= 1;
            if list.len == 0 && list.closed {
                self.patrol.wake.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests;

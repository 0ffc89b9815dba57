use super::*;

fn dog(limits: &DownstreamLimits) -> (Watchdog, Arc<ConnState>) {
    let st = Arc::new(ConnState::default());
    (Watchdog::new(limits, st.clone()), st)
}

#[test]
fn first_request_deadline_counts_from_accept() {
    let l = DownstreamLimits {
        request_headers_timeout: Some(Duration::from_millis(100)),
        ..DownstreamLimits::default()
    };
    let (w, st) = dog(&l);
    let t0 = st.accepted_ms;
    assert!(w.check(t0 + 50).is_ok());
    // Bytes trickling in do not extend it.
    st.last_io_ms.store(t0 + 99, Ordering::Relaxed);
    assert_eq!(w.check(t0 + 100), Err(Expired::NoRequest));
    // Once a request came, only a head in progress is timed.
    let r = st.request();
    assert!(w.check(t0 + 100).is_ok());
    drop(r);
    assert!(
        w.check(t0 + 10_000).is_ok(),
        "a waiting keep-alive connection"
    );
}

#[test]
fn a_later_head_is_timed_from_its_first_byte() {
    let l = DownstreamLimits {
        request_headers_timeout: Some(Duration::from_millis(100)),
        ..DownstreamLimits::default()
    };
    let (w, st) = dog(&l);
    drop(st.request());
    st.head_started();
    let since = st.head_since_ms.load(Ordering::Relaxed);
    // Started again by more bytes of the same head: still the first.
    st.head_started();
    assert_eq!(st.head_since_ms.load(Ordering::Relaxed), since);
    assert!(w.check(since + 99).is_ok());
    assert_eq!(w.check(since + 100), Err(Expired::NoRequest));
    st.head_done();
    assert!(w.check(since + 100).is_ok());
}

#[test]
fn idle_rules_depend_on_requests_in_flight() {
    let l = DownstreamLimits {
        idle_timeout: Some(Duration::from_millis(1000)),
        stream_idle_timeout: Some(Duration::from_millis(100)),
        ..DownstreamLimits::default()
    };
    let (w, st) = dog(&l);
    let r = st.request();
    let t0 = st.last_io_ms.load(Ordering::Relaxed);
    // In flight: the stream rule, after the request path's own timer.
    assert!(w.check(t0 + 100).is_ok());
    assert_eq!(w.check(t0 + 200), Err(Expired::StreamsIdle));
    drop(r);
    // Nothing in flight: the connection idle timeout.
    assert!(w.check(t0 + 200).is_ok());
    assert_eq!(w.check(t0 + 1000), Err(Expired::Idle));
}

#[test]
fn a_connection_state_fits_an_80_byte_block() {
    // With its `Arc`'s two counts: every connection has one.
    assert!(std::mem::size_of::<ConnState>() <= 64);
}

#[tokio::test]
async fn the_patrol_ends_a_quiet_connection_and_wakes_it_on_drain() {
    let l = DownstreamLimits {
        idle_timeout: Some(Duration::from_millis(50)),
        ..DownstreamLimits::default()
    };
    let (_stop, stopped) = watch::channel(false);
    let patrol = Patrol::start(&l, stopped);
    let quiet = Arc::new(ConnState::default());
    let _q = patrol.watch(quiet.clone());
    let busy = Arc::new(ConnState::default());
    let watched = patrol.watch(busy.clone());
    let request = busy.request();
    let bound = Duration::from_secs(5);
    let why = tokio::time::timeout(bound, std::future::poll_fn(|cx| quiet.poll_expired(cx)));
    assert_eq!(why.await.unwrap(), Expired::Idle);
    // A request in flight is timed by the stream rule (off here).
    let drained = std::future::poll_fn(|cx| {
        assert!(busy.poll_expired(cx).is_pending());
        if watched.draining() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    });
    let patrol2 = patrol.clone();
    tokio::spawn(async move { patrol2.drain() });
    tokio::time::timeout(bound, drained).await.unwrap();
    drop(request);
    // Drained and empty, the patrol's task ends (a removed gateway
    // port leaves nothing running).
    drop((_q, watched));
    let ended = async {
        while Arc::strong_count(&patrol) > 1 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(bound, ended).await.unwrap();
}

#[tokio::test]
async fn the_patrol_times_a_waiting_requests_stream_and_wakes_its_task() {
    let l = DownstreamLimits {
        stream_idle_timeout: Some(Duration::from_millis(40)),
        ..DownstreamLimits::default()
    };
    let (_stop, stopped) = watch::channel(false);
    let patrol = Patrol::start(&l, stopped);
    let state = Arc::new(ConnState::default());
    assert!(!state.patrolled());
    let watched = patrol.watch(state.clone());
    assert!(state.patrolled());
    let _request = state.request();
    let waiting = state.stream_wait();
    let started = std::time::Instant::now();
    // Woken through the waker the connection's task registers.
    let expired = std::future::poll_fn(|cx| {
        let _ = state.poll_expired(cx);
        if waiting.expired() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    });
    tokio::time::timeout(Duration::from_secs(5), expired)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(40),
        "not before its time"
    );
    // The connection itself lives on (the request path answers 504).
    assert_eq!(state.expired.load(Ordering::Relaxed), 0);
    drop(waiting);
    // A clock that ended is never marked.
    state.expire_stream();
    assert_eq!(
        state.stream.load(Ordering::Relaxed),
        super::super::conn::STREAM_NONE
    );
    drop(watched);
    assert!(!state.patrolled());
}

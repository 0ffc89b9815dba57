use super::*;
use std::time::Duration;

#[test]
fn outside_a_clocked_poll_now_is_the_clock() {
    let a = now();
    std::thread::sleep(Duration::from_millis(2));
    assert!(now() >= a + Duration::from_millis(2));
    let m = now_ms();
    std::thread::sleep(Duration::from_millis(2));
    assert!(now_ms() >= m + 2);
}

#[tokio::test(flavor = "current_thread")]
async fn within_a_poll_now_is_the_polls_start_and_each_poll_reads_again() {
    let before = Instant::now();
    let (first, second, after_yield) = Clocked::new(async {
        let first = (now(), now_ms());
        // Time passes within the poll: the reading does not move.
        std::thread::sleep(Duration::from_millis(3));
        let second = (now(), now_ms());
        // A new poll reads the clock again.
        tokio::task::yield_now().await;
        (first, second, now())
    })
    .await;
    assert!(first.0 >= before);
    assert_eq!(first, second);
    assert!(after_yield >= first.0 + Duration::from_millis(3));
    // Outside the task again: the clock, not the last poll's reading.
    std::thread::sleep(Duration::from_millis(2));
    assert!(now() >= after_yield + Duration::from_millis(2));
}

#[test]
fn a_panicking_poll_leaves_no_reading_behind() {
    let r = std::panic::catch_unwind(|| {
        futures_executor_block_on(Clocked::new(async { panic!("boom") }))
    });
    assert!(r.is_err());
    let stale = now();
    std::thread::sleep(Duration::from_millis(2));
    assert!(now() >= stale + Duration::from_millis(2));
}

/// Polls a future to completion on this thread.
fn futures_executor_block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Wake;

use http_body_util::BodyExt;

use super::*;

/// Counts its wakes.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn inbox() -> (Shared, Arc<Count>) {
    let slot = Arc::new(Count::default());
    (Inbox::new(Waker::from(slot.clone())), slot)
}

#[tokio::test]
async fn data_then_trailers_and_what_was_read_is_given_back() {
    let (shared, slot) = inbox();
    let mut body = RequestBody::new(shared.clone(), Some(5));
    assert!(!body.is_end_stream());
    assert!(lock(&shared).push(Bytes::from_static(b"abc"), false));
    assert!(lock(&shared).push(Bytes::from_static(b"de"), false));
    let mut trailers = HeaderList::new();
    trailers.append(
        http::HeaderName::from_static("grpc-status"),
        http::HeaderValue::from_static("0"),
    );
    lock(&shared).trailers(trailers);
    let got = (&mut body).collect().await.unwrap();
    assert_eq!(got.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(got.to_bytes(), "abcde");
    assert_eq!(lock(&shared).take_released(false), 5);
    assert!(slot.0.load(Ordering::Relaxed) >= 1, "the slot was told");
    assert!(body.is_end_stream());
}

#[tokio::test]
async fn a_reset_fails_the_body_but_no_error_ends_it() {
    let (shared, _) = inbox();
    let mut body = RequestBody::new(shared.clone(), None);
    lock(&shared).reset(ErrorCode::CANCEL);
    let e = body.frame().await.unwrap().unwrap_err();
    assert_eq!(e.reason(), Some(h2::Reason::CANCEL));
    let (shared, _) = inbox();
    let mut body = RequestBody::new(shared.clone(), None);
    assert!(lock(&shared).push(Bytes::from_static(b"x"), false));
    lock(&shared).reset(ErrorCode::NO_ERROR);
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "x"
    );
    assert!(body.frame().await.is_none());
}

#[test]
fn a_dropped_body_gives_everything_back() {
    let (shared, slot) = inbox();
    let body = RequestBody::new(shared.clone(), None);
    assert!(lock(&shared).push(Bytes::from_static(b"abc"), false));
    drop(body);
    assert_eq!(slot.0.load(Ordering::Relaxed), 1);
    assert!(lock(&shared).is_dropped());
    assert_eq!(lock(&shared).take_released(false), 3);
    assert!(!lock(&shared).push(Bytes::from_static(b"more"), true));
}

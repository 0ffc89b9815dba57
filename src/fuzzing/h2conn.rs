//! The `h2conn` fuzz target: a whole server connection of strait's HTTP/2
//! codec (`crate::http2::conn`, the sans-IO core of `h2_codec_server`)
//! driven by arbitrary client bytes, with a server that acts on every
//! event as `h2_codec_server` does: each request answered (a head, a body
//! within the peer's windows, sometimes trailers), request bodies given
//! back to the windows as read, 431 then a reset for heads too large, and,
//! as the input's first byte says, a graceful shutdown, refusals and
//! resets of this side's.
//!
//! The first byte also picks the configuration (strait's defaults, or
//! tiny windows and limits) and how the bytes arrive (whole, or in pieces
//! of 1 to 16 bytes); the client preface is put before the rest unless it
//! asks otherwise. Invariants beyond "no panic": the server's output is a
//! sequence of whole frames that parse, no DATA frame longer than the
//! client's SETTINGS_MAX_FRAME_SIZE, no stream sent more DATA than the
//! windows allowed, nothing written after a connection error's GOAWAY.

use std::collections::BTreeMap;

use bytes::BytesMut;

use crate::header_list::HeaderList;
use crate::http2::conn::{Config, Connection, Event, PREFACE};
use crate::http2::frame::{self, DEFAULT_MAX_FRAME_SIZE, Frame};
use crate::http2::hpack::Limits;
use crate::http2::{Error, ErrorCode};

/// A response body's size: more than a default stream window.
const BODY: usize = 70_000;

/// What the server still owes one stream.
#[derive(Debug, Default)]
struct Owed {
    /// Response body bytes not yet sent (`None`: the head is not sent).
    body: Option<usize>,
    /// End with trailers rather than END_STREAM on the last DATA.
    trailers: bool,
}

/// The server's side: answers and the bookkeeping the invariants need.
struct Server {
    conn: Connection,
    streams: BTreeMap<u32, Owed>,
    control: u8,
    events: Vec<Event>,
    peer_max_frame: u32,
    /// The server's output since the last check (whole frames expected).
    out: BytesMut,
    closed_written: bool,
    body: Vec<u8>,
}

fn config(small: bool) -> Config {
    if !small {
        return Config::default();
    }
    Config {
        max_concurrent_streams: 3,
        stream_window: 100,
        connection_window: 70_000,
        limits: Limits {
            max_list_size: 300,
            max_fields: 6,
        },
        max_header_block: 1024,
        max_queued_control_frames: 16,
        max_pending_accept_reset_streams: 2,
        max_local_error_reset_streams: 8,
        ..Config::default()
    }
}

impl Server {
    fn new(control: u8) -> Server {
        Server {
            conn: Connection::new(config(control & 2 != 0)),
            streams: BTreeMap::new(),
            control,
            events: Vec::new(),
            peer_max_frame: DEFAULT_MAX_FRAME_SIZE,
            out: BytesMut::new(),
            closed_written: false,
            body: (0..BODY).map(|i| i as u8).collect(),
        }
    }

    fn recv(&mut self, input: &mut BytesMut) {
        let mut events = std::mem::take(&mut self.events);
        let r = self.conn.recv(input, &mut events);
        for e in events.drain(..) {
            self.event(e);
        }
        self.events = events;
        if let Err(e) = r {
            assert!(
                matches!(e, Error::Connection { .. }),
                "recv returns connection errors only: {e:?}"
            );
            assert!(self.conn.is_closed());
        }
        self.send();
        self.check_output();
    }

    fn event(&mut self, e: Event) {
        match e {
            Event::Request {
                stream, end_stream, ..
            } => {
                let owed = Owed {
                    body: None,
                    trailers: stream % 3 == 0,
                };
                self.streams.insert(stream, owed);
                if self.control & 8 != 0 && stream % 5 == 0 {
                    // A refusal of the application's (MadeYouReset's count).
                    self.streams.remove(&stream);
                    let _ = self.conn.refuse(stream, ErrorCode::PROTOCOL_ERROR);
                } else if end_stream || self.control & 4 != 0 {
                    // Answered at once, or (as after a local reply) before
                    // the request's body is in.
                    self.respond(stream);
                }
            }
            Event::TooLarge { stream } => {
                self.conn
                    .send_response(stream, 431, &HeaderList::new(), true);
                self.conn.reset(stream, ErrorCode::NO_ERROR);
            }
            Event::Data {
                stream,
                data,
                end_stream,
            } => {
                // Read at once, as a body that keeps up.
                self.conn.release(stream, data.len());
                if end_stream && self.streams.get(&stream).is_some_and(|o| o.body.is_none()) {
                    self.respond(stream);
                }
            }
            Event::Trailers { stream, .. } => {
                if self.streams.get(&stream).is_some_and(|o| o.body.is_none()) {
                    self.respond(stream);
                }
            }
            Event::Reset { stream, .. } => {
                self.streams.remove(&stream);
            }
            Event::Settings(s) => {
                if let Some(m) = s.max_frame_size {
                    self.peer_max_frame = m;
                }
            }
            Event::GoAway { .. } => self.conn.go_away_gracefully(),
            Event::WindowUpdate { .. } | Event::PingAck(_) => {}
        }
    }

    fn respond(&mut self, stream: u32) {
        let mut headers = HeaderList::new();
        headers.append(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        self.conn.send_response(stream, 200, &headers, false);
        if let Some(o) = self.streams.get_mut(&stream) {
            o.body = Some(BODY - usize::from(self.control >> 4) * 4096);
        }
    }

    /// Send what the windows allow of every body owed.
    fn send(&mut self) {
        let mut done = Vec::new();
        for (&id, owed) in &mut self.streams {
            let Some(left) = owed.body else { continue };
            if !self.conn.is_open(id) {
                done.push(id);
                continue;
            }
            let cap = self.conn.send_capacity(id);
            let take = left.min(cap);
            let chunk = &self.body[BODY - left..BODY - left + take];
            let last = take == left;
            let n = self.conn.send_data(id, chunk, last && !owed.trailers);
            assert!(n <= cap, "sent {n} past a window of {cap}");
            assert_eq!(n, take, "the capacity it offered");
            owed.body = Some(left - n);
            if last {
                if owed.trailers {
                    let mut t = HeaderList::new();
                    t.append(
                        http::HeaderName::from_static("grpc-status"),
                        http::HeaderValue::from_static("0"),
                    );
                    self.conn.send_trailers(id, &t);
                }
                done.push(id);
            }
        }
        for id in done {
            self.streams.remove(&id);
        }
    }

    /// The output so far is whole frames that parse; DATA within the
    /// client's frame size; nothing after a connection error's GOAWAY.
    fn check_output(&mut self) {
        let taken = self.conn.output().split();
        if self.closed_written {
            assert!(taken.is_empty(), "output after the connection closed");
        }
        self.out.extend_from_slice(&taken);
        let mut rest = &self.out[..];
        loop {
            match frame::parse(rest, 16_777_215) {
                Ok(Some((f, n))) => {
                    if let Frame::Data { data, .. } = f {
                        assert!(data.len() <= self.peer_max_frame as usize);
                    }
                    rest = rest.get(n..).unwrap_or_default();
                }
                Ok(None) => break,
                Err(e) => panic!("the server wrote a frame that does not parse: {e:?}"),
            }
        }
        assert!(rest.is_empty(), "a partial frame in the output");
        self.out.clear();
        if self.conn.is_closed() {
            self.closed_written = true;
        }
    }
}

/// See the module comment.
pub fn h2conn(data: &[u8]) {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let mut server = Server::new(control);
    server.check_output();
    let mut client = Vec::with_capacity(PREFACE.len() + rest.len());
    if control & 1 == 0 {
        client.extend_from_slice(PREFACE);
    }
    client.extend_from_slice(rest);
    // Whole, or in pieces of 1 to 16 bytes.
    let piece = match control & 0x60 {
        0 => client.len().max(1),
        n => usize::from(n >> 5) * 5 + 1,
    };
    let mut input = BytesMut::new();
    for (i, part) in client.chunks(piece).enumerate() {
        input.extend_from_slice(part);
        server.recv(&mut input);
        if server.conn.is_closed() {
            break;
        }
        if control & 0x80 != 0 && i == 2 {
            server.conn.go_away_gracefully();
            server.check_output();
        }
    }
    // The client goes; whatever the server still holds is dropped.
    server.send();
    server.check_output();
}

//! The server side of one HTTP/2 connection without I/O: bytes the client
//! sent go in ([`Connection::recv`]) and come out as [`Event`]s; responses,
//! data and resets go in through methods and come out as bytes in one
//! output buffer ([`Connection::output`]).
//!
//! RFC 9113: the client preface and SETTINGS first (§3.4), SETTINGS
//! exchange and ACKs (§6.5.3), stream ids and states (§5.1), header blocks
//! of HEADERS and CONTINUATION with nothing between (§4.3, §6.10), flow
//! control both ways (§5.2, §6.9), PING (§6.7), GOAWAY (§6.8). Streams live
//! in a vector sorted by id (ids only grow, §5.1.1): found by binary
//! search, no hashing.
//!
//! Flood limits, each a connection error ENHANCE_YOUR_CALM:
//! - a header block longer than [`Config::max_header_block`], or of more
//!   CONTINUATION frames than h2 takes (CONTINUATION flood,
//!   CVE-2024-27316);
//! - more control frames queued unsent (SETTINGS and PING ACKs, RST_STREAM)
//!   than [`Config::max_queued_control_frames`] (Envoy's
//!   `max_outbound_control_frames`, 1000: PING and SETTINGS floods);
//! - more streams reset by the client before the application saw them
//!   within one `recv` than [`Config::max_pending_accept_reset_streams`]
//!   (h2's Rapid Reset bound, CVE-2023-44487);
//! - more stream errors this side sent than
//!   [`Config::max_local_error_reset_streams`] (h2's MadeYouReset bound,
//!   CVE-2025-8671).
//!
//! Once a connection error's GOAWAY is written nothing more is (§5.4.1:
//! the connection is closed after it): responses, data and resets of the
//! application are dropped.
//!
//! Frames on a stream this side no longer knows, below the highest id the
//! client opened, are ignored (§5.1: frames may still arrive after a
//! RST_STREAM); DATA on them still counts against the connection window,
//! which is given back at once.

use bytes::{Bytes, BytesMut};

use super::error::{Error, ErrorCode};
use super::frame::{
    self, DEFAULT_MAX_FRAME_SIZE, DEFAULT_WINDOW, Frame, HEADER_LEN, MAX_WINDOW, Settings,
};
use super::head::{self, Options, Refusal, RequestHead};
use super::hpack::{Decoder, Encoder, Fields, Limits};
use crate::header_list::HeaderList;

/// The client connection preface (§3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The PING that follows a graceful shutdown's first GOAWAY; its ACK
/// brings the final one ([`Connection::go_away_gracefully`]).
const SHUTDOWN_PING: [u8; 8] = *b"strait\x00\x01";

/// The highest stream id (§5.1.1): a first GOAWAY's last stream.
const MAX_STREAM_ID: u32 = (1 << 31) - 1;

/// This side's settings and limits (strait's downstream defaults:
/// `proxy::limits::DownstreamLimits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: each stream's receive window.
    pub stream_window: u32,
    /// The connection's receive window (raised by a WINDOW_UPDATE at
    /// start).
    pub connection_window: u32,
    pub max_frame_size: u32,
    pub header_table_size: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE and the field count.
    pub limits: Limits,
    /// The longest header block (HEADERS and its CONTINUATIONs) taken in.
    pub max_header_block: usize,
    pub max_queued_control_frames: usize,
    pub max_pending_accept_reset_streams: usize,
    pub max_local_error_reset_streams: usize,
    pub head: Options,
}

impl Default for Config {
    fn default() -> Config {
        let limits = Limits::default();
        Config {
            max_concurrent_streams: 100,
            stream_window: 64 * 1024,
            connection_window: 1024 * 1024,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            header_table_size: 4096,
            limits,
            max_header_block: limits.max_list_size.saturating_mul(2).max(16 * 1024),
            max_queued_control_frames: 1000,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
            head: Options::default(),
        }
    }
}

/// What the client did.
#[derive(Debug)]
pub enum Event {
    /// A new stream's request head; `end_stream` if it has no body.
    Request {
        stream: u32,
        head: Box<RequestHead>,
        end_stream: bool,
    },
    /// A request head refused as too large (the list size or the field
    /// count): the application answers 431 and, if the request is still
    /// open, [`Connection::reset`]s it; or just resets. Malformed heads
    /// are reset by the connection itself.
    TooLarge {
        stream: u32,
    },
    /// Request body bytes; give them back with [`Connection::release`]
    /// once consumed.
    Data {
        stream: u32,
        data: Bytes,
        end_stream: bool,
    },
    Trailers {
        stream: u32,
        trailers: HeaderList,
    },
    /// The client reset the stream (or this side did, for a stream error:
    /// the application drops its state either way).
    Reset {
        stream: u32,
        code: ErrorCode,
    },
    /// A stream's send window grew: more data may be sent.
    WindowUpdate {
        stream: u32,
    },
    /// The client's SETTINGS, already applied.
    Settings(Settings),
    PingAck([u8; 8]),
    GoAway {
        last_stream: u32,
        code: ErrorCode,
        debug: Bytes,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the preface.
    Preface,
    /// Preface read; the first frame must be SETTINGS.
    FirstSettings,
    Open,
    /// A connection error was sent: nothing more is read.
    Closed,
}

#[derive(Debug)]
struct Stream {
    id: u32,
    /// The client sent END_STREAM.
    remote_closed: bool,
    /// This side sent END_STREAM.
    local_closed: bool,
    /// A response head went out.
    responded: bool,
    /// The request head was handed to the application.
    trailers_seen: bool,
    recv_window: i64,
    /// Released by the application, not yet given back by WINDOW_UPDATE.
    recv_unacked: u32,
    send_window: i64,
}

/// A header block being gathered (§4.3).
#[derive(Debug)]
struct Pending {
    stream: u32,
    end_stream: bool,
    self_dependent: bool,
    block: Vec<u8>,
    /// CONTINUATION frames so far (empty ones grow no block).
    continuations: usize,
}

/// One connection's state (see the module comment).
#[derive(Debug)]
pub struct Connection {
    config: Config,
    state: State,
    decoder: Decoder,
    fields: Fields,
    encoder: Encoder,
    out: BytesMut,
    streams: Vec<Stream>,
    /// The highest stream id the client opened (§5.1.1).
    last_stream: u32,
    /// New streams above this are refused: a GOAWAY was sent.
    goaway_sent: Option<u32>,
    /// A graceful shutdown's first GOAWAY and PING went out; the PING's ACK
    /// sends the final GOAWAY.
    shutdown_pinged: bool,
    pending: Option<Pending>,
    settings_acked: bool,
    peer_initial_window: u32,
    peer_max_frame_size: u32,
    recv_window: i64,
    recv_unacked: u32,
    send_window: i64,
    queued_control: usize,
    local_resets: usize,
}

impl Connection {
    /// A connection whose first bytes out are this side's SETTINGS (and
    /// the connection window's WINDOW_UPDATE), §3.4.
    pub fn new(config: Config) -> Connection {
        let mut c = Connection {
            config,
            state: State::Preface,
            decoder: Decoder::new(config.header_table_size as usize),
            fields: Fields::new(config.limits),
            encoder: Encoder::default(),
            out: BytesMut::with_capacity(1024),
            streams: Vec::new(),
            last_stream: 0,
            goaway_sent: None,
            shutdown_pinged: false,
            pending: None,
            settings_acked: false,
            peer_initial_window: DEFAULT_WINDOW,
            peer_max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            recv_window: i64::from(DEFAULT_WINDOW),
            recv_unacked: 0,
            send_window: i64::from(DEFAULT_WINDOW),
            queued_control: 0,
            local_resets: 0,
        };
        let settings = Settings {
            header_table_size: Some(config.header_table_size),
            enable_push: Some(false),
            max_concurrent_streams: Some(config.max_concurrent_streams),
            initial_window_size: Some(config.stream_window.min(MAX_WINDOW)),
            max_frame_size: Some(config.max_frame_size),
            max_header_list_size: u32::try_from(config.limits.max_list_size).ok(),
            enable_connect_protocol: config.head.connect_protocol.then_some(true),
            no_rfc7540_priorities: None,
        };
        frame::write::settings(&mut c.out, &settings);
        let window = config.connection_window.min(MAX_WINDOW);
        if window > DEFAULT_WINDOW {
            frame::write::window_update(&mut c.out, 0, window - DEFAULT_WINDOW);
            c.recv_window = i64::from(window);
        }
        c
    }

    /// The bytes to send; take them with `split()` (the count of queued
    /// control frames starts over).
    pub fn output(&mut self) -> &mut BytesMut {
        self.queued_control = 0;
        &mut self.out
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes queued to send (without taking them, so the count of queued
    /// control frames goes on).
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    /// Whether `stream` is still open on either side.
    pub fn is_open(&self, stream: u32) -> bool {
        self.find(stream).is_some()
    }

    /// A PING of this side's (a keep-alive); its ACK comes back as
    /// [`Event::PingAck`].
    pub fn ping(&mut self, data: [u8; 8]) {
        if self.state != State::Closed {
            frame::write::ping(&mut self.out, data, false);
        }
    }

    /// Streams open on either side.
    pub fn active_streams(&self) -> usize {
        self.streams.len()
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.streams.binary_search_by_key(&id, |s| s.id).ok()
    }

    fn stream_recv_window(&self) -> i64 {
        // Before the client acknowledged our SETTINGS it may use the
        // protocol's default window (§6.9.2).
        let w = i64::from(self.config.stream_window.min(MAX_WINDOW));
        if self.settings_acked {
            w
        } else {
            w.max(i64::from(DEFAULT_WINDOW))
        }
    }

    /// Read frames from the front of `input` (consumed as read), appending
    /// what they mean to `events`. A connection error has already been
    /// answered with GOAWAY in the output when it is returned.
    pub fn recv(&mut self, input: &mut BytesMut, events: &mut Vec<Event>) -> Result<(), Error> {
        let opened_before = self.last_stream;
        let mut early_resets = 0;
        let r = self.recv_frames(input, events, opened_before, &mut early_resets);
        r.map_err(|e| self.fail(e))
    }

    fn fail(&mut self, e: Error) -> Error {
        if let Error::Connection { code, reason } = e {
            if self.state != State::Closed {
                frame::write::goaway(&mut self.out, self.last_stream, code, reason.as_bytes());
            }
            self.state = State::Closed;
        }
        e
    }

    fn recv_frames(
        &mut self,
        input: &mut BytesMut,
        events: &mut Vec<Event>,
        opened_before: u32,
        early_resets: &mut usize,
    ) -> Result<(), Error> {
        if self.state == State::Preface {
            let n = input.len().min(PREFACE.len());
            if input.get(..n) != PREFACE.get(..n) {
                return Err(Error::connection(
                    ErrorCode::PROTOCOL_ERROR,
                    "bad client preface",
                ));
            }
            if n < PREFACE.len() {
                return Ok(());
            }
            let _ = input.split_to(PREFACE.len());
            self.state = State::FirstSettings;
        }
        while self.state != State::Closed {
            let Some(h) = frame::FrameHeader::parse(input) else {
                return Ok(());
            };
            if h.len > self.config.max_frame_size {
                return Err(Error::connection(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "frame longer than SETTINGS_MAX_FRAME_SIZE",
                ));
            }
            let n = HEADER_LEN + h.len as usize;
            if input.len() < n {
                return Ok(());
            }
            // Frozen, so DATA can be handed out without a copy.
            let bytes = input.split_to(n).freeze();
            if self.state == State::FirstSettings {
                if h.kind != frame::kind::SETTINGS || h.flags & frame::flag::ACK != 0 {
                    return Err(Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "first frame not SETTINGS",
                    ));
                }
                self.state = State::Open;
            }
            let f = match frame::parse_payload(h, bytes.get(HEADER_LEN..).unwrap_or_default()) {
                Ok(f) => f,
                Err(e @ Error::Connection { .. }) => return Err(e),
                Err(Error::Stream {
                    stream,
                    code,
                    reason,
                }) => {
                    if self.pending.is_some() {
                        return Err(Error::connection(
                            ErrorCode::PROTOCOL_ERROR,
                            "frame inside a header block",
                        ));
                    }
                    self.stream_error(stream, code, reason, events)?;
                    continue;
                }
            };
            if let Some(p) = &self.pending
                && !matches!(f, Frame::Continuation { stream, .. } if stream == p.stream)
            {
                return Err(Error::connection(
                    ErrorCode::PROTOCOL_ERROR,
                    "frame inside a header block",
                ));
            }
            self.frame(f, &bytes, events, opened_before, early_resets)?;
        }
        Ok(())
    }

    fn frame(
        &mut self,
        f: Frame<'_>,
        bytes: &Bytes,
        events: &mut Vec<Event>,
        opened_before: u32,
        early_resets: &mut usize,
    ) -> Result<(), Error> {
        match f {
            Frame::Headers {
                stream,
                end_stream,
                end_headers,
                priority,
                fragment,
            } => {
                if stream % 2 == 0 {
                    return Err(Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "client stream id even",
                    ));
                }
                let p = Pending {
                    stream,
                    end_stream,
                    self_dependent: priority.is_some_and(|p| p.dependency == stream),
                    block: fragment.to_vec(),
                    continuations: 0,
                };
                self.check_block(p.block.len())?;
                if end_headers {
                    self.block(p, events)?;
                } else {
                    self.pending = Some(p);
                }
            }
            Frame::Continuation {
                end_headers,
                fragment,
                ..
            } => {
                let Some(mut p) = self.pending.take() else {
                    return Err(Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "CONTINUATION outside a header block",
                    ));
                };
                self.check_block(p.block.len() + fragment.len())?;
                p.continuations += 1;
                if p.continuations > self.max_continuations() {
                    return Err(Error::connection(
                        ErrorCode::ENHANCE_YOUR_CALM,
                        "too many CONTINUATION frames",
                    ));
                }
                p.block.extend_from_slice(fragment);
                if end_headers {
                    self.block(p, events)?;
                } else {
                    self.pending = Some(p);
                }
            }
            Frame::Data {
                stream,
                end_stream,
                data,
                flow_len,
            } => self.data(stream, end_stream, data, flow_len, bytes, events)?,
            Frame::RstStream { stream, code } => {
                if stream > self.last_stream {
                    return Err(Error::connection(
                        ErrorCode::PROTOCOL_ERROR,
                        "RST_STREAM on an idle stream",
                    ));
                }
                if let Some(i) = self.find(stream) {
                    let s = self.streams.remove(i);
                    if stream > opened_before && !s.responded {
                        *early_resets += 1;
                        if *early_resets > self.config.max_pending_accept_reset_streams {
                            return Err(Error::connection(
                                ErrorCode::ENHANCE_YOUR_CALM,
                                "too many streams reset before they were served",
                            ));
                        }
                    }
                    events.push(Event::Reset { stream, code });
                }
            }
            Frame::Settings(s) => self.settings(s, events)?,
            Frame::SettingsAck => {
                if !self.settings_acked {
                    self.settings_acked = true;
                    self.decoder
                        .set_max_size(self.config.header_table_size as usize);
                }
            }
            Frame::Ping { ack: true, data } => {
                if data == SHUTDOWN_PING && self.shutdown_pinged {
                    // One round trip after the first GOAWAY: every stream
                    // the client opened before it saw it has arrived.
                    self.go_away(ErrorCode::NO_ERROR);
                } else {
                    events.push(Event::PingAck(data));
                }
            }
            Frame::Ping { ack: false, data } => {
                frame::write::ping(&mut self.out, data, true);
                self.control_queued()?;
            }
            Frame::GoAway {
                last_stream,
                code,
                debug,
            } => events.push(Event::GoAway {
                last_stream,
                code,
                debug: bytes.slice_ref(debug),
            }),
            Frame::WindowUpdate { stream, increment } => {
                self.window_update(stream, increment, events)?;
            }
            Frame::Priority { .. } | Frame::Unknown { .. } => {}
        }
        Ok(())
    }

    /// CVE-2024-27316: a header block never grows past the bound.
    fn check_block(&self, len: usize) -> Result<(), Error> {
        if len > self.config.max_header_block {
            return Err(Error::connection(
                ErrorCode::ENHANCE_YOUR_CALM,
                "header block too large",
            ));
        }
        Ok(())
    }

    /// CONTINUATION frames one block may take, as h2 bounds them (h2#758,
    /// `calc_max_continuation_frames`): the frames the list limit needs at
    /// the frame size, a quarter more, at least 5; empty or tiny frames
    /// (which grow no block) cannot loop the server.
    fn max_continuations(&self) -> usize {
        let frame = (self.config.max_frame_size as usize).max(1);
        let needed = (self.config.limits.max_list_size / frame).max(1);
        needed.saturating_add(needed >> 2).max(5)
    }

    fn control_queued(&mut self) -> Result<(), Error> {
        self.queued_control += 1;
        if self.queued_control > self.config.max_queued_control_frames {
            return Err(Error::connection(
                ErrorCode::ENHANCE_YOUR_CALM,
                "too many control frames queued",
            ));
        }
        Ok(())
    }

    /// A whole header block: a new stream's request head or a stream's
    /// trailers.
    fn block(&mut self, p: Pending, events: &mut Vec<Event>) -> Result<(), Error> {
        // The block is decoded whatever becomes of the stream: the
        // dynamic table must follow the client's (§4.3).
        self.decoder.decode(&p.block, &mut self.fields)?;
        let stream = p.stream;
        if stream > self.last_stream {
            self.last_stream = stream;
            if self.goaway_sent.is_some_and(|last| stream > last) {
                return Ok(());
            }
            if p.self_dependent {
                return self.stream_error(
                    stream,
                    ErrorCode::PROTOCOL_ERROR,
                    "stream depends on itself",
                    events,
                );
            }
            if self.streams.len() >= self.config.max_concurrent_streams as usize {
                // §5.1.2: refused, not counted as a client error.
                frame::write::rst_stream(&mut self.out, stream, ErrorCode::REFUSED_STREAM);
                return self.control_queued();
            }
            match head::request(&mut self.fields, &self.config.head) {
                Ok(head) => {
                    self.streams.push(Stream {
                        id: stream,
                        remote_closed: p.end_stream,
                        local_closed: false,
                        responded: false,
                        trailers_seen: false,
                        recv_window: self.stream_recv_window(),
                        recv_unacked: 0,
                        send_window: i64::from(self.peer_initial_window),
                    });
                    events.push(Event::Request {
                        stream,
                        head: Box::new(head),
                        end_stream: p.end_stream,
                    });
                    Ok(())
                }
                Err(Refusal::TooLarge) => {
                    // Open until the application answers (431); a request
                    // still open then is reset (`Connection::reset`).
                    self.streams.push(Stream {
                        id: stream,
                        remote_closed: p.end_stream,
                        local_closed: false,
                        responded: false,
                        trailers_seen: true,
                        recv_window: self.stream_recv_window(),
                        recv_unacked: 0,
                        send_window: i64::from(self.peer_initial_window),
                    });
                    events.push(Event::TooLarge { stream });
                    Ok(())
                }
                Err(r) => {
                    let Error::Stream { code, reason, .. } = r.error(stream) else {
                        return Ok(());
                    };
                    self.stream_error(stream, code, reason, events)
                }
            }
        } else {
            let Some(i) = self.find(stream) else {
                return Ok(());
            };
            let s = &mut self.streams[i];
            if s.remote_closed {
                return self.stream_error(
                    stream,
                    ErrorCode::STREAM_CLOSED,
                    "HEADERS after END_STREAM",
                    events,
                );
            }
            // §8.1: a second HEADERS is trailers, and ends the stream.
            if !p.end_stream || s.trailers_seen {
                return self.stream_error(
                    stream,
                    ErrorCode::PROTOCOL_ERROR,
                    "trailers without END_STREAM",
                    events,
                );
            }
            s.remote_closed = true;
            s.trailers_seen = true;
            match head::trailers(&mut self.fields, &self.config.head) {
                Ok(trailers) => {
                    events.push(Event::Trailers { stream, trailers });
                    self.close_if_done(stream);
                    Ok(())
                }
                Err(r) => {
                    let code = match r {
                        Refusal::TooLarge => ErrorCode::REFUSED_STREAM,
                        Refusal::Malformed(_) => ErrorCode::PROTOCOL_ERROR,
                    };
                    self.stream_error(stream, code, "trailers refused", events)
                }
            }
        }
    }

    fn data(
        &mut self,
        stream: u32,
        end_stream: bool,
        data: &[u8],
        flow_len: u32,
        bytes: &Bytes,
        events: &mut Vec<Event>,
    ) -> Result<(), Error> {
        if stream > self.last_stream {
            return Err(Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "DATA on an idle stream",
            ));
        }
        // §6.9.1: the connection window first.
        if i64::from(flow_len) > self.recv_window {
            return Err(Error::connection(
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA beyond the connection window",
            ));
        }
        self.recv_window -= i64::from(flow_len);
        let padding = flow_len - data.len() as u32;
        let Some(i) = self.find(stream) else {
            // A stream already closed here: give the window back.
            self.release_connection(flow_len);
            return Ok(());
        };
        self.release_connection(padding);
        let s = &mut self.streams[i];
        if s.remote_closed {
            self.release_connection(data.len() as u32);
            return self.stream_error(
                stream,
                ErrorCode::STREAM_CLOSED,
                "DATA after END_STREAM",
                events,
            );
        }
        if i64::from(flow_len) > s.recv_window {
            self.release_connection(data.len() as u32);
            return self.stream_error(
                stream,
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA beyond the stream window",
                events,
            );
        }
        s.recv_window -= i64::from(flow_len);
        // Padding is owed back at once, with the next WINDOW_UPDATE.
        s.recv_unacked = s.recv_unacked.saturating_add(padding);
        s.remote_closed = end_stream;
        events.push(Event::Data {
            stream,
            data: bytes.slice_ref(data),
            end_stream,
        });
        if end_stream {
            self.close_if_done(stream);
        }
        Ok(())
    }

    fn settings(&mut self, s: Settings, events: &mut Vec<Event>) -> Result<(), Error> {
        if let Some(w) = s.initial_window_size {
            // §6.9.2: the change applies to every open stream's window.
            let delta = i64::from(w) - i64::from(self.peer_initial_window);
            for st in &mut self.streams {
                st.send_window += delta;
                if st.send_window > i64::from(MAX_WINDOW) {
                    return Err(Error::connection(
                        ErrorCode::FLOW_CONTROL_ERROR,
                        "SETTINGS_INITIAL_WINDOW_SIZE overflows a window",
                    ));
                }
            }
            self.peer_initial_window = w;
            if delta > 0 {
                events.extend(
                    self.streams
                        .iter()
                        .map(|st| Event::WindowUpdate { stream: st.id }),
                );
            }
        }
        if let Some(m) = s.max_frame_size {
            self.peer_max_frame_size = m;
        }
        frame::write::settings_ack(&mut self.out);
        self.control_queued()?;
        events.push(Event::Settings(s));
        Ok(())
    }

    fn window_update(
        &mut self,
        stream: u32,
        increment: u32,
        events: &mut Vec<Event>,
    ) -> Result<(), Error> {
        if stream == 0 {
            self.send_window += i64::from(increment);
            if self.send_window > i64::from(MAX_WINDOW) {
                return Err(Error::connection(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "connection window above 2^31-1",
                ));
            }
            events.extend(
                self.streams
                    .iter()
                    .filter(|s| !s.local_closed)
                    .map(|s| Event::WindowUpdate { stream: s.id }),
            );
            return Ok(());
        }
        if stream > self.last_stream {
            return Err(Error::connection(
                ErrorCode::PROTOCOL_ERROR,
                "WINDOW_UPDATE on an idle stream",
            ));
        }
        let Some(i) = self.find(stream) else {
            return Ok(());
        };
        let s = &mut self.streams[i];
        s.send_window += i64::from(increment);
        if s.send_window > i64::from(MAX_WINDOW) {
            return self.stream_error(
                stream,
                ErrorCode::FLOW_CONTROL_ERROR,
                "stream window above 2^31-1",
                events,
            );
        }
        events.push(Event::WindowUpdate { stream });
        Ok(())
    }

    /// RST_STREAM for a client's error on one stream (§5.4.2); too many
    /// of them end the connection.
    fn stream_error(
        &mut self,
        stream: u32,
        code: ErrorCode,
        _reason: &'static str,
        events: &mut Vec<Event>,
    ) -> Result<(), Error> {
        if let Some(i) = self.find(stream) {
            self.streams.remove(i);
            events.push(Event::Reset { stream, code });
        }
        self.count_local_reset()?;
        frame::write::rst_stream(&mut self.out, stream, code);
        self.control_queued()
    }

    /// One more stream error of this side's: past h2's budget, GOAWAY
    /// instead of the RST_STREAM (h2 sends no reset beyond it).
    fn count_local_reset(&mut self) -> Result<(), Error> {
        self.local_resets += 1;
        if self.local_resets > self.config.max_local_error_reset_streams {
            return Err(Error::connection(
                ErrorCode::ENHANCE_YOUR_CALM,
                "too many stream errors",
            ));
        }
        Ok(())
    }

    fn close_if_done(&mut self, stream: u32) {
        if let Some(i) = self.find(stream)
            && self.streams[i].remote_closed
            && self.streams[i].local_closed
        {
            self.streams.remove(i);
        }
    }

    fn release_connection(&mut self, n: u32) {
        self.recv_unacked = self.recv_unacked.saturating_add(n);
        let window = i64::from(self.config.connection_window.min(MAX_WINDOW));
        if i64::from(self.recv_unacked) >= window / 2 {
            frame::write::window_update(&mut self.out, 0, self.recv_unacked);
            self.recv_window += i64::from(self.recv_unacked);
            self.recv_unacked = 0;
        }
    }

    /// The application consumed `n` bytes of `stream`'s body: both windows
    /// reopen, a WINDOW_UPDATE going out once half a window is owed.
    pub fn release(&mut self, stream: u32, n: usize) {
        let n = u32::try_from(n).unwrap_or(MAX_WINDOW);
        self.release_connection(n);
        let window = self.stream_recv_window();
        if let Some(i) = self.find(stream) {
            let s = &mut self.streams[i];
            if s.remote_closed {
                return;
            }
            s.recv_unacked = s.recv_unacked.saturating_add(n);
            if i64::from(s.recv_unacked) >= window / 2 {
                frame::write::window_update(&mut self.out, stream, s.recv_unacked);
                s.recv_window += i64::from(s.recv_unacked);
                s.recv_unacked = 0;
            }
        }
    }

    /// A response head; `end_stream` if there is no body.
    pub fn send_response(
        &mut self,
        stream: u32,
        status: u16,
        headers: &HeaderList,
        end_stream: bool,
    ) {
        if self.state == State::Closed {
            return;
        }
        let Some(i) = self.find(stream) else {
            return;
        };
        self.encoder.response(
            &mut self.out,
            stream,
            status,
            headers,
            end_stream,
            self.peer_max_frame_size,
        );
        let s = &mut self.streams[i];
        s.responded = true;
        s.local_closed = end_stream;
        if end_stream {
            self.close_if_done(stream);
        }
    }

    /// How many body bytes `stream` may send now (both send windows; none
    /// once the connection is closed).
    pub fn send_capacity(&self, stream: u32) -> usize {
        if self.state == State::Closed {
            return 0;
        }
        self.find(stream)
            .and_then(|i| self.streams.get(i))
            .filter(|s| !s.local_closed)
            .map_or(0, |s| s.send_window.min(self.send_window).max(0) as usize)
    }

    /// Body bytes, as many as the windows allow, in frames of at most the
    /// client's SETTINGS_MAX_FRAME_SIZE; returns how many were taken.
    /// `end_stream` applies only when all of `data` is taken.
    pub fn send_data(&mut self, stream: u32, data: &[u8], end_stream: bool) -> usize {
        if self.state == State::Closed {
            return 0;
        }
        let cap = self.send_capacity(stream).min(data.len());
        let Some(i) = self.find(stream) else {
            return 0;
        };
        let take = data.get(..cap).unwrap_or_default();
        let ends = end_stream && cap == data.len();
        let max = self.peer_max_frame_size as usize;
        if take.is_empty() {
            if ends {
                frame::write::data(&mut self.out, stream, b"", true);
            }
        } else {
            self.out
                .reserve(take.len() + take.len().div_ceil(max) * HEADER_LEN);
            let mut chunks = take.chunks(max).peekable();
            while let Some(c) = chunks.next() {
                frame::write::data(&mut self.out, stream, c, ends && chunks.peek().is_none());
            }
        }
        let s = &mut self.streams[i];
        s.send_window -= cap as i64;
        self.send_window -= cap as i64;
        if ends {
            s.local_closed = true;
            self.close_if_done(stream);
        }
        cap
    }

    /// Trailers, ending the stream.
    pub fn send_trailers(&mut self, stream: u32, trailers: &HeaderList) {
        if self.state == State::Closed || self.find(stream).is_none() {
            return;
        }
        self.encoder
            .trailers(&mut self.out, stream, trailers, self.peer_max_frame_size);
        if let Some(i) = self.find(stream) {
            self.streams[i].local_closed = true;
        }
        self.close_if_done(stream);
    }

    /// A stream error the application found in what the client sent (a
    /// head it cannot take, DATA beyond `content-length`): RST_STREAM,
    /// counted with the connection's own stream errors (MadeYouReset's
    /// bound); past it, GOAWAY is in the output and the error returned.
    pub fn refuse(&mut self, stream: u32, code: ErrorCode) -> Result<(), Error> {
        if self.state == State::Closed {
            return Ok(());
        }
        if let Some(i) = self.find(stream) {
            self.streams.remove(i);
        }
        let r = self.count_local_reset().and_then(|()| {
            frame::write::rst_stream(&mut self.out, stream, code);
            self.control_queued()
        });
        r.map_err(|e| self.fail(e))
    }

    /// Reset a stream from this side (the application's choice).
    pub fn reset(&mut self, stream: u32, code: ErrorCode) {
        if let Some(i) = self.find(stream) {
            self.streams.remove(i);
            if self.state != State::Closed {
                frame::write::rst_stream(&mut self.out, stream, code);
            }
        }
    }

    /// A GOAWAY (§6.8): streams above the last one the client opened are
    /// ignored from now on; open ones finish.
    pub fn go_away(&mut self, code: ErrorCode) {
        if self.state == State::Closed || self.goaway_sent.is_some() {
            return;
        }
        self.goaway_sent = Some(self.last_stream);
        frame::write::goaway(&mut self.out, self.last_stream, code, b"");
    }

    /// A graceful shutdown in two steps (§6.8): GOAWAY with the highest
    /// stream id and a PING, then, once the PING is acknowledged (streams
    /// the client opened before it read the first GOAWAY have arrived and
    /// are served), the final GOAWAY with the last stream opened. The `h2`
    /// crate does the same (`go_away_gracefully`); Envoy sends the same
    /// first GOAWAY (`shutdownNotice`) and the final one after its
    /// `drain_timeout` instead of a round trip.
    pub fn go_away_gracefully(&mut self) {
        if self.state == State::Closed || self.goaway_sent.is_some() || self.shutdown_pinged {
            return;
        }
        self.shutdown_pinged = true;
        frame::write::goaway(&mut self.out, MAX_STREAM_ID, ErrorCode::NO_ERROR, b"");
        frame::write::ping(&mut self.out, SHUTDOWN_PING, false);
    }

    /// Whether the final GOAWAY went out: no new stream will be taken.
    pub fn is_going_away(&self) -> bool {
        self.goaway_sent.is_some()
    }

    /// End the connection with a connection error of the application's
    /// (GOAWAY with `code`, nothing more read): returned to pass on.
    pub fn close(&mut self, code: ErrorCode, reason: &'static str) -> Error {
        self.fail(Error::connection(code, reason))
    }
}

#[cfg(test)]
mod tests;

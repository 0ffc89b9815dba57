//! RFC 9113 §7 error codes and §5.4's split between connection errors
//! (GOAWAY, then close) and stream errors (RST_STREAM, the connection
//! goes on).

use std::fmt;

/// An HTTP/2 error code (RFC 9113 §7). A newtype, not an enum: a peer may
/// send codes this list does not know, which must not be treated as
/// special (§7: "MUST NOT trigger any special behavior").
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    pub const SETTINGS_TIMEOUT: ErrorCode = ErrorCode(0x4);
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    pub const CONNECT_ERROR: ErrorCode = ErrorCode(0xa);
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);
    pub const HTTP_1_1_REQUIRED: ErrorCode = ErrorCode(0xd);

    /// The RFC's name, or `None` for a code it does not define.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => return None,
        })
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "ErrorCode({:#x})", self.0),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a protocol violation costs (RFC 9113 §5.4): the whole connection,
/// or one stream. `reason` is for logs and GOAWAY debug data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// §5.4.1: GOAWAY with `code`, then close.
    Connection {
        code: ErrorCode,
        reason: &'static str,
    },
    /// §5.4.2: RST_STREAM on `stream` with `code`; the connection goes on.
    Stream {
        stream: u32,
        code: ErrorCode,
        reason: &'static str,
    },
}

impl Error {
    pub(crate) fn connection(code: ErrorCode, reason: &'static str) -> Error {
        Error::Connection { code, reason }
    }

    pub(crate) fn stream(stream: u32, code: ErrorCode, reason: &'static str) -> Error {
        Error::Stream {
            stream,
            code,
            reason,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match *self {
            Error::Connection { code, .. } | Error::Stream { code, .. } => code,
        }
    }

    pub fn reason(&self) -> &'static str {
        match *self {
            Error::Connection { reason, .. } | Error::Stream { reason, .. } => reason,
        }
    }

    pub fn is_connection_error(&self) -> bool {
        matches!(self, Error::Connection { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Connection { code, reason } => write!(f, "connection error {code}: {reason}"),
            Error::Stream {
                stream,
                code,
                reason,
            } => write!(f, "stream {stream} error {code}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

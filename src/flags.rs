//! Envoy response flags (`%RESPONSE_FLAGS%`), as Istio users read them in
//! access logs and the `response_flags` metric label.

use std::fmt;

/// A set of response flags, printed comma-joined in Envoy's order, `-` if none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(u32);

macro_rules! flags {
    ($($name:ident = $bit:expr, $short:literal;)*) => {
        impl Flags {
            $(pub const $name: Flags = Flags(1 << $bit);)*
            const TABLE: &'static [(Flags, &'static str)] = &[$((Flags::$name, $short)),*];
        }
    };
}

// Envoy's order (stream_info/utility.h `ALL_RESPONSE_STRINGS_FLAGS`).
flags! {
    FAILED_LOCAL_HEALTH_CHECK = 0, "LH";
    NO_HEALTHY_UPSTREAM = 1, "UH";
    UPSTREAM_REQUEST_TIMEOUT = 2, "UT";
    LOCAL_RESET = 3, "LR";
    UPSTREAM_REMOTE_RESET = 4, "UR";
    UPSTREAM_CONNECTION_FAILURE = 5, "UF";
    UPSTREAM_CONNECTION_TERMINATION = 6, "UC";
    UPSTREAM_OVERFLOW = 7, "UO";
    NO_ROUTE_FOUND = 8, "NR";
    DELAY_INJECTED = 9, "DI";
    FAULT_INJECTED = 10, "FI";
    RATE_LIMITED = 11, "RL";
    UPSTREAM_RETRY_LIMIT_EXCEEDED = 12, "URX";
    STREAM_IDLE_TIMEOUT = 13, "SI";
    INVALID_ENVOY_REQUEST_HEADERS = 14, "IH";
    DOWNSTREAM_PROTOCOL_ERROR = 15, "DPE";
    UPSTREAM_MAX_STREAM_DURATION_REACHED = 16, "UMSDR";
    NO_CLUSTER_FOUND = 17, "NC";
    DURATION_TIMEOUT = 18, "DT";
    UPSTREAM_PROTOCOL_ERROR = 19, "UPE";
    OVERLOAD_MANAGER = 20, "OM";
    DOWNSTREAM_CONNECTION_TERMINATION = 21, "DC";
}

impl Flags {
    pub const NONE: Flags = Flags(0);

    pub fn insert(&mut self, f: Flags) {
        self.0 |= f.0;
    }

    pub fn contains(self, f: Flags) -> bool {
        self.0 & f.0 == f.0 && f.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl fmt::Display for Flags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, short) in Flags::TABLE {
            if self.contains(*flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(short)?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_envoy() {
        assert_eq!(Flags::NONE.to_string(), "-");
        assert_eq!(
            (Flags::UPSTREAM_CONNECTION_FAILURE | Flags::UPSTREAM_RETRY_LIMIT_EXCEEDED).to_string(),
            "UF,URX"
        );
        assert_eq!(Flags::NO_ROUTE_FOUND.to_string(), "NR");
    }
}

//! Access log in Istio's default format (`pilot/pkg/model/telemetry_logging.go`)
//! or as JSON with the same fields. Lines go through a bounded channel to a
//! writer task, so a slow disk never blocks a request; overflow is counted.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::mpsc;

use super::flags::Flags;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// One request's log fields (Envoy command operators).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Entry {
    pub start_time: String,
    pub method: String,
    pub path: String,
    pub protocol: &'static str,
    pub response_code: u16,
    #[serde(serialize_with = "flags_str")]
    pub response_flags: Flags,
    pub response_code_details: String,
    pub connection_termination_details: Option<String>,
    pub upstream_transport_failure_reason: Option<String>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: u64,
    pub upstream_service_time: Option<u64>,
    pub x_forwarded_for: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub authority: Option<String>,
    pub upstream_host: Option<String>,
    pub upstream_cluster: Option<String>,
    pub upstream_local_address: Option<String>,
    pub downstream_local_address: String,
    pub downstream_remote_address: String,
    pub requested_server_name: Option<String>,
    pub route_name: Option<String>,
}

fn flags_str<S: serde::Serializer>(f: &Flags, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&f.to_string())
}

fn dash(v: &Option<String>) -> &str {
    v.as_deref().filter(|s| !s.is_empty()).unwrap_or("-")
}

impl Entry {
    /// Istio's default TEXT format, one line.
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(320);
        let _ = write!(
            s,
            "[{}] \"{} {} {}\" {} {} {} {} \"{}\" {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\" {} {} {} {} {} {}",
            self.start_time,
            self.method,
            self.path,
            self.protocol,
            self.response_code,
            self.response_flags,
            if self.response_code_details.is_empty() {
                "-"
            } else {
                &self.response_code_details
            },
            dash(&self.connection_termination_details),
            dash(&self.upstream_transport_failure_reason),
            self.bytes_received,
            self.bytes_sent,
            self.duration,
            self.upstream_service_time
                .map_or("-".to_string(), |t| t.to_string()),
            dash(&self.x_forwarded_for),
            dash(&self.user_agent),
            dash(&self.request_id),
            dash(&self.authority),
            dash(&self.upstream_host),
            dash(&self.upstream_cluster),
            dash(&self.upstream_local_address),
            self.downstream_local_address,
            self.downstream_remote_address,
            dash(&self.requested_server_name),
            dash(&self.route_name),
        );
        s
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `%START_TIME%`: RFC 3339 UTC with milliseconds, as Envoy prints it.
pub fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Where lines go.
pub struct AccessLog {
    tx: Option<mpsc::Sender<String>>,
    format: Format,
    pub dropped: AtomicU64,
}

impl AccessLog {
    /// No access log.
    pub fn off() -> AccessLog {
        AccessLog {
            tx: None,
            format: Format::Text,
            dropped: AtomicU64::new(0),
        }
    }

    /// Log to `path` (`-` is stdout). Must be called inside a tokio runtime.
    pub fn to_path(path: &str, format: Format) -> std::io::Result<AccessLog> {
        let mut out: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        };
        let (tx, mut rx) = mpsc::channel::<String>(8192);
        tokio::task::spawn_blocking(move || {
            while let Some(line) = rx.blocking_recv() {
                let _ = writeln!(out, "{line}");
                // Write whatever else is queued before flushing.
                while let Ok(line) = rx.try_recv() {
                    let _ = writeln!(out, "{line}");
                }
                let _ = out.flush();
            }
        });
        Ok(AccessLog {
            tx: Some(tx),
            format,
            dropped: AtomicU64::new(0),
        })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn log(&self, e: &Entry) {
        let Some(tx) = &self.tx else { return };
        let line = match self.format {
            Format::Text => e.text(),
            Format::Json => e.json(),
        };
        if tx.try_send(line).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_rfc3339_millis() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_786_245_123);
        assert_eq!(format_time(t), "2026-11-27T13:30:45.123Z");
        assert_eq!(format_time(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn text_format_has_istio_fields_in_order() {
        let e = Entry {
            start_time: "2026-11-27T10:10:45.123Z".into(),
            method: "GET".into(),
            path: "/reviews/1".into(),
            protocol: "HTTP/1.1",
            response_code: 503,
            response_flags: Flags::NO_CLUSTER_FOUND,
            response_code_details: "cluster_not_found".into(),
            bytes_received: 0,
            bytes_sent: 0,
            duration: 1,
            authority: Some("reviews:9080".into()),
            upstream_cluster: Some("outbound|9080|v3|reviews.default.svc.cluster.local".into()),
            downstream_local_address: "127.0.0.1:15001".into(),
            downstream_remote_address: "127.0.0.1:40000".into(),
            route_name: Some("split".into()),
            ..Default::default()
        };
        assert_eq!(
            e.text(),
            "[2026-11-27T10:10:45.123Z] \"GET /reviews/1 HTTP/1.1\" 503 NC cluster_not_found - \"-\" 0 0 1 - \"-\" \"-\" \"-\" \"reviews:9080\" \"-\" outbound|9080|v3|reviews.default.svc.cluster.local - 127.0.0.1:15001 127.0.0.1:40000 - split"
        );
        let j: serde_json::Value = serde_json::from_str(&e.json()).unwrap();
        assert_eq!(j["response_flags"], "NC");
        assert_eq!(j["route_name"], "split");
    }
}

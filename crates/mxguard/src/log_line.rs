//! The text log's hot line, written by hand.
//!
//! The policy server logs `policy greylist: deferred client=…` (or
//! `passed client=… delayed=…`) for every greylisted request, and
//! `mxguard report` reads those lines back. Through tracing-subscriber's
//! formatter that line cost ~6k instructions per request (the timestamp's
//! six padded integers, the field visitor, the ANSI-escaping writer it
//! runs every character through): about a tenth of a request's work.
//! [`HotLines`] writes exactly the same bytes for that event and hands
//! every other event, and every event it cannot prove plain, to the
//! default formatter. The same goes for `serve`'s line per scanned message
//! (`scan: verdict`, which `mxguard report` reads too): ~8k instructions
//! of a milter message through the default formatter. Text format without colours only (a journal, a
//! pipe, a file); a terminal with colours and the JSON format are
//! untouched.

use mxguard_report::date::civil_from_days;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Where the greylist events come from (the policy engine).
const TARGET: &str = "mxguard_policy::engine";

/// The hot events: target and exact field names, in order (the message
/// first, as tracing's macros put it).
const HOT: [(&str, &[&str]); 3] = [
    (TARGET, &["message", "client"]),
    (TARGET, &["message", "client", "delayed"]),
    (
        "mxguard_scan::service",
        &[
            "message", "queue_id", "action", "score", "symbols", "greylist", "dkim",
        ],
    ),
];

/// The default text formatter, with the hot lines written by hand.
pub struct HotLines<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for HotLines<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if let Some(line) = hot_line(event)
            && !writer.has_ansi_escapes()
            && ctx.event_scope().is_none()
        {
            let mut stamp = [0u8; TIMESTAMP_LEN];
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let stamp = timestamp(now.as_secs(), now.subsec_micros(), &mut stamp);
            writer.write_str(stamp)?;
            writer.write_str(" ")?;
            return writer.write_str(&line);
        }
        self.0.format_event(ctx, writer, event)
    }
}

/// A hot event's line after the timestamp, when the event is one (target,
/// level, exactly its fields) and every value is plain printable ASCII, so
/// the default formatter's escaping would change nothing.
fn hot_line(event: &Event<'_>) -> Option<String> {
    let meta = event.metadata();
    if *meta.level() != Level::INFO {
        return None;
    }
    let target = meta.target();
    let fields = meta.fields();
    HOT.iter().find(|(t, names)| {
        *t == target
            && fields.len() == names.len()
            && fields.iter().zip(names.iter()).all(|(f, n)| f.name() == *n)
    })?;
    let mut v = LineVisitor {
        text: String::with_capacity(160),
        ok: true,
    };
    v.text.push_str(" INFO ");
    v.text.push_str(target);
    v.text.push_str(": ");
    event.record(&mut v);
    if !v.ok {
        return None;
    }
    v.text.push('\n');
    Some(v.text)
}

/// Writes the fields as tracing-subscriber's default visitor does without
/// colours: the message first as it is, then ` name=value` (`Debug`).
struct LineVisitor {
    text: String,
    ok: bool,
}

impl LineVisitor {
    fn value(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let start = self.text.len();
        if field.name() != "message" {
            self.text.push(' ');
            self.text.push_str(field.name());
            self.text.push('=');
        }
        let from = self.text.len();
        if write!(self.text, "{value:?}").is_err() {
            self.ok = false;
        }
        // Anything the default formatter would escape (control characters,
        // C1 codes) or that is not ASCII: let it do so.
        if !self.text.as_bytes()[from..]
            .iter()
            .all(|b| (0x20..0x7f).contains(b))
        {
            self.ok = false;
            self.text.truncate(start);
        }
    }
}

impl Visit for LineVisitor {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "message" {
            self.ok = false;
            return;
        }
        self.text.push(' ');
        self.text.push_str(field.name());
        self.text.push('=');
        push_decimal(&mut self.text, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.value(field, value);
    }
}

fn push_decimal(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`, as tracing-subscriber's default timer
/// writes UTC (years 0–9999, which covers every clock this runs under).
const TIMESTAMP_LEN: usize = 27;

fn timestamp(secs: u64, micros: u32, out: &mut [u8; TIMESTAMP_LEN]) -> &str {
    let days = secs / 86_400;
    let rest = secs % 86_400;
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX / 2));
    let mut put = |at: usize, width: usize, mut n: u64| {
        for digit in out[at..at + width].iter_mut().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, u64::try_from(year).unwrap_or(0).min(9999));
    put(5, 2, u64::from(month));
    put(8, 2, u64::from(day));
    put(11, 2, rest / 3600);
    put(14, 2, rest / 60 % 60);
    put(17, 2, rest % 60);
    put(20, 6, u64::from(micros.min(999_999)));
    out[4] = b'-';
    out[7] = b'-';
    out[10] = b'T';
    out[13] = b':';
    out[16] = b':';
    out[19] = b'.';
    out[26] = b'Z';
    // Only ASCII was written.
    std::str::from_utf8(out).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The events of the policy engine and others, each emitted under the
    /// default formatter and under [`HotLines`], in one order.
    fn emit_all() {
        let client = String::from("192.0.2.1");
        let v6 = String::from("2001:db8::1");
        let odd = String::from("198.51.100.7\x1b[31m");
        let secs = 301u64;
        macro_rules! engine {
            ($($t:tt)*) => { tracing::event!(target: "mxguard_policy::engine", Level::INFO, $($t)*) };
        }
        engine!(client = %client, "policy greylist: deferred");
        engine!(client = %v6, delayed = secs, "policy greylist: passed");
        engine!(client = %client, delayed = 0u64, "policy greylist: passed");
        // Not plain: the default formatter escapes it.
        engine!(client = %odd, "policy greylist: deferred");
        engine!(client = %"caf\u{e9}", "policy greylist: deferred");
        // Other fields, targets, levels: the default formatter's.
        engine!(ip = %client, domain = "example.com", "greylist: retry passes");
        tracing::event!(target: "mxguard_policy::engine", Level::WARN, client = %client, "policy greylist: deferred");
        tracing::event!(target: "mxguard_policy::server", Level::INFO, client = %client, "policy greylist: deferred");
        engine!(client = ?client, "policy greylist: deferred");
        engine!(client = %client, delayed = -5i64, "policy greylist: passed");
        // The scan service's line per message (its fields as log_verdict
        // records them: Debug, f64, Display, &str).
        macro_rules! verdict {
            ($($t:tt)*) => { tracing::event!(target: "mxguard_scan::service", Level::INFO, $($t)*) };
        }
        verdict!(queue_id = ?"4ABC123", action = ?"no action", score = 1.5f64,
            symbols = %"DMARC_NA,R_SPF_NA", greylist = "-", dkim = "-", "scan: verdict");
        verdict!(queue_id = ?"-", action = ?"reject", score = -0.0f64,
            symbols = %"", greylist = "passed", dkim = "signed", "scan: verdict");
        verdict!(queue_id = ?"Q", action = ?"greylist", score = 1e21f64,
            symbols = %"GTUBE", greylist = "deferred", dkim = "-", "scan: verdict");
        // Not plain: escaped or left to the default formatter.
        verdict!(queue_id = ?"q\"x", action = ?"no action", score = 0.1f64,
            symbols = %"A", greylist = "caf\u{e9}", dkim = "-", "scan: verdict");
        verdict!(queue_id = ?"Q", action = ?"no action", score = f64::NAN,
            symbols = %"\x1b[31m", greylist = "-", dkim = "-", "scan: verdict");
        // Another field set: the default formatter's.
        verdict!(queue_id = ?"Q", action = ?"no action", score = 2.0f64, "scan: verdict");
        let span = tracing::info_span!("conn", id = 3);
        let _in = span.enter();
        engine!(client = %client, "policy greylist: deferred");
        verdict!(queue_id = ?"Q", action = ?"no action", score = 1.0f64,
            symbols = %"A", greylist = "-", dkim = "-", "scan: verdict");
    }

    fn capture(hot: bool) -> String {
        let buf = Buffer::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .with_max_level(Level::TRACE);
        if hot {
            let s = builder
                .event_format(HotLines(tracing_subscriber::fmt::format()))
                .finish();
            tracing::subscriber::with_default(s, emit_all);
        } else {
            tracing::subscriber::with_default(builder.finish(), emit_all);
        }
        buf.text()
    }

    /// Splits a line into its timestamp and the rest.
    fn split(line: &str) -> (&str, &str) {
        line.split_at(TIMESTAMP_LEN)
    }

    #[test]
    fn lines_are_byte_identical_to_the_default_formatter() {
        let before = chrono_free_now();
        let default = capture(false);
        let hot = capture(true);
        let after = chrono_free_now();
        let (d, h): (Vec<&str>, Vec<&str>) = (default.lines().collect(), hot.lines().collect());
        assert_eq!(d.len(), 18, "{default}");
        assert_eq!(d.len(), h.len());
        for (d, h) in d.iter().zip(&h) {
            let ((dt, drest), (ht, hrest)) = (split(d), split(h));
            assert_eq!(drest, hrest, "after the timestamp:\n{d}\n{h}");
            // The same timestamp shape, within the test's run.
            for t in [dt, ht] {
                assert!(
                    before.as_str() <= t && t <= after.as_str(),
                    "{t} not in [{before}, {after}]"
                );
                assert_eq!(t.len(), TIMESTAMP_LEN);
            }
        }
        assert!(hot.ends_with('\n'));
        assert!(
            h[0].ends_with(
                "  INFO mxguard_policy::engine: policy greylist: deferred client=192.0.2.1"
            ),
            "{}",
            h[0]
        );
        assert!(h[1].ends_with("  INFO mxguard_policy::engine: policy greylist: passed client=2001:db8::1 delayed=301"), "{}", h[1]);
        // Left to the default formatter, which writes it as it is.
        assert!(h[3].ends_with("client=198.51.100.7\x1b[31m"), "{}", h[3]);
        assert!(
            h[10].ends_with(
                "  INFO mxguard_scan::service: scan: verdict queue_id=\"4ABC123\" \
                 action=\"no action\" score=1.5 symbols=DMARC_NA,R_SPF_NA greylist=\"-\" dkim=\"-\""
            ),
            "{}",
            h[10]
        );
    }

    /// Now as tracing-subscriber's own timer writes it.
    fn chrono_free_now() -> String {
        let buf = Buffer::default();
        let s = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(s, || tracing::info!("x"));
        buf.text()[..TIMESTAMP_LEN].to_string()
    }

    #[test]
    fn timestamps_match_known_dates() {
        let mut b = [0u8; TIMESTAMP_LEN];
        assert_eq!(timestamp(0, 0, &mut b), "1970-01-01T00:00:00.000000Z");
        // date -u -d @1796644805
        assert_eq!(
            timestamp(1_796_644_805, 123_456, &mut b),
            "2026-12-07T12:00:05.123456Z"
        );
        // A leap day and the last second of a century leap year.
        assert_eq!(
            timestamp(951_782_400, 999_999, &mut b),
            "2000-02-29T00:00:00.999999Z"
        );
        assert_eq!(
            timestamp(978_307_199, 1, &mut b),
            "2000-12-31T23:59:59.000001Z"
        );
        assert_eq!(
            timestamp(4_107_542_400, 0, &mut b),
            "2100-03-01T00:00:00.000000Z"
        );
    }
}

//! How the server writes an event's fields: `name=value`, the message bare, strings quoted,
//! as tracing-subscriber's default formatter writes them but without its styling of every
//! field name (on the per-request line that styling cost about a fifth of the line, even with
//! colours off).
//!
//! Strings, integers and booleans are written directly. Through `fmt`'s `Debug` (what
//! tracing-subscriber's `debug_fn` formatter does with every value) each field took a
//! formatter of its own and each string was escaped character by character: most of the
//! per-request line's cost, which the ledger's writer thread pays on the one CPU the requests
//! use. A string with anything to escape, and every other value, still goes through `Debug`,
//! so the text is the same.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The server's field formatter (see the module's documentation).
pub(crate) struct PlainFields;

impl<'w> FormatFields<'w> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            seen: false,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes each field as it is visited, fields apart by one space.
struct PlainVisitor<'w> {
    writer: Writer<'w>,
    seen: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    /// Writes what goes before the field's value: a space after the first field, then
    /// `name=` unless it is the message. False when writing has failed already.
    fn start(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        let first = !std::mem::replace(&mut self.seen, true);
        self.result = Self::write_start(&mut self.writer, first, field.name());
        self.result.is_ok()
    }

    fn write_start(writer: &mut Writer<'_>, first: bool, name: &str) -> fmt::Result {
        if !first {
            writer.write_char(' ')?;
        }
        if name != "message" {
            // `strip_prefix`: `trim_start_matches` with a `&str` builds a substring searcher.
            writer.write_str(name.strip_prefix("r#").unwrap_or(name))?;
            writer.write_char('=')?;
        }
        Ok(())
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.start(field) {
            return;
        }
        // `Debug` of a string escapes `"`, `\` and what is not printable ASCII in some way;
        // a string without any of them is itself between quotes.
        self.result = if value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            self.writer.write_char('"').and_then(|()| {
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            })
        } else {
            write!(self.writer, "{value:?}")
        };
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            self.result = self.writer.write_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            self.result = self.writer.write_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.result = self.writer.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.start(field) {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// Every kind of field the server logs, and strings with each thing `Debug` escapes.
    fn emit_events() {
        let strings = [
            "plain words, digits 0-9 and ~!@#$%^&*()_+{}|:<>?`-=[];',./",
            "",
            "a \"quoted\" word",
            r"a back\slash",
            "tab\there, line\nbreak, return\r",
            "bell \u{7} and delete \u{7f}",
            "née ünïcode → ✓ and \u{200b} zero width, \u{301} combining",
            "an emoji 🦀",
        ];
        for text in strings {
            let shown = format!("d-{text}");
            tracing::info!(
                target: "opengateway::request",
                request_id = %shown,
                text = text,
                maybe = Some(text),
                missing = Option::<&str>::None,
                count = 42u64,
                negative = -7i64,
                yes = true,
                no = false,
                cost_usd = 0.000_123_f64,
                whole = 3.0f64,
                list = ?vec![text],
                r#type = "raw name",
                "request"
            );
        }
        tracing::warn!(
            big = u64::MAX,
            small = i64::MIN,
            "message with {} {}",
            "args",
            1
        );
        tracing::info!("");
    }

    fn output(fields: impl for<'w> FormatFields<'w> + Send + Sync + 'static) -> String {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, emit_events);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    /// The text is what tracing-subscriber's `debug_fn` formatter writes, byte for byte.
    #[test]
    fn fields_are_written_as_debug_formatting_writes_them() {
        use tracing_subscriber::field::MakeExt;
        let reference =
            tracing_subscriber::fmt::format::debug_fn(|writer, field, value| match field.name() {
                "message" => write!(writer, "{value:?}"),
                name => write!(writer, "{}={value:?}", name.trim_start_matches("r#")),
            })
            .delimited(" ");
        let expected = output(reference);
        let written = output(PlainFields);
        assert_eq!(written, expected);
        // Ten events; a `%` value is written as it displays, line break included.
        assert_eq!(written.lines().count(), 11, "{written}");
        assert!(
            written.contains(r#"request_id=d-a "quoted" word text="a \"quoted\" word""#),
            "{written}"
        );
        assert!(written.contains(" type=\"raw name\""), "{written}");
        assert!(!written.contains("missing"), "{written}");
    }
}

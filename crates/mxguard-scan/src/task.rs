//! One message under scan: the envelope and the message model.

use crate::lead_text::LeadHits;
use mxguard_auth::Parsed;
use mxguard_core::Envelope;
use mxguard_message::Mail;
use std::ops::Deref;
use std::sync::OnceLock;

/// What the checks see: the envelope, and the message ([`Mail`]: raw
/// bytes, the parsed MIME tree and its views, each computed once on first
/// use and shared by every check that needs it).
///
/// A `Task` dereferences to its [`Mail`], so `task.message`, `task.raw`,
/// `task.parsed`, `task.truncated`, `task.text_parts()`, `task.urls()`,
/// `task.attachments()`, `task.received()` and the header accessors are the
/// model's. It is `Send + Sync`: a `&Task` may be held across an `.await`
/// in a spawned future.
pub struct Task<'a> {
    pub envelope: &'a Envelope,
    mail: Mail<'a>,
    /// The signature headers parsed for DKIM and ARC, once for both.
    signatures: OnceLock<Parsed<'a>>,
    /// The lure families and offer terms of the lead texts, found once for
    /// both language checks.
    lead_hits: OnceLock<LeadHits>,
}

impl<'a> Task<'a> {
    /// Parses `raw` unless it exceeds `max_size`, within the parse's
    /// default limits (the ones the classifier learns with).
    pub fn new(envelope: &'a Envelope, raw: &'a [u8], max_size: u64) -> Task<'a> {
        Task {
            envelope,
            mail: Mail::new(raw, max_size),
            signatures: OnceLock::new(),
            lead_hits: OnceLock::new(),
        }
    }

    /// The message model.
    pub fn mail(&self) -> &Mail<'a> {
        &self.mail
    }

    /// The message as the DKIM and ARC checks read it, parsed on first
    /// use and shared: the body hashes of signatures with the same
    /// canonicalisation and length are computed once for both checks.
    pub fn signatures(&self) -> &Parsed<'a> {
        self.signatures.get_or_init(|| Parsed::new(self.mail.raw))
    }

    /// What the lure and offer phrases find in the subject and the heads
    /// of the text parts ([`crate::lead_text`]): one automaton pass, on
    /// first use, shared by `lures` and `risky_offers`.
    pub(crate) fn lead_hits(&self) -> &LeadHits {
        self.lead_hits.get_or_init(|| LeadHits::of(self))
    }

    pub fn is_authenticated(&self) -> bool {
        self.envelope.is_authenticated()
    }
}

impl<'a> Deref for Task<'a> {
    type Target = Mail<'a>;

    fn deref(&self) -> &Mail<'a> {
        &self.mail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: \"J\" <j@example.com>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nX-Long: a\r\n b\r\n\r\nhello\r\n";

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn a_task_may_cross_an_await() {
        send_sync::<Task<'static>>();
        send_sync::<&Task<'static>>();
    }

    #[test]
    fn the_models_views_through_the_task() {
        let env = Envelope::default();
        let raw = b"Received: from a.example (a.example [192.0.2.1]) by mx.example; date\r\n\
            Content-Type: multipart/mixed; boundary=BOUNDARY\r\n\r\n--BOUNDARY\r\n\
            Content-Type: text/plain\r\n\r\nhttps://mx1.web.de/x\r\n--BOUNDARY\r\n\
            Content-Type: image/gif; name=a.gif\r\n\r\nGIF89a\r\n--BOUNDARY--\r\n";
        let t = Task::new(&env, raw, 1 << 20);
        // Checks on other threads see one computation of each view.
        let (urls, attachments, hops) = std::thread::scope(|s| {
            let a = s.spawn(|| t.urls().to_vec());
            let b = s.spawn(|| t.attachments().map(|a| a.detected).collect::<Vec<_>>());
            let c = s.spawn(|| t.received().len());
            (a.join().unwrap(), b.join().unwrap(), c.join().unwrap())
        });
        assert_eq!(urls.len(), 1);
        assert_eq!(urls[0].domain, "web.de");
        assert_eq!(attachments, [mxguard_message::attachment::Detected::Gif]);
        assert_eq!(hops, 1);
        assert_eq!(t.mail().urls(), urls.as_slice());
    }

    #[test]
    fn headers_decoded_raw_and_logical() {
        let env = Envelope::default();
        let t = Task::new(&env, MSG, 1 << 20);
        assert!(t.parsed);
        assert_eq!(t.header_values("subject"), vec!["café"]);
        assert_eq!(
            t.header_raw_values("Subject"),
            vec!["=?utf-8?q?caf=C3=A9?="]
        );
        assert_eq!(t.header_values("From"), vec!["J <j@example.com>"]);
        assert_eq!(t.header_raw_values("x-long"), vec!["a b"]);
        let lines: Vec<String> = t.logical_header_lines().collect();
        assert_eq!(lines[2], "X-Long: a b");
        assert_eq!(t.raw_body(), b"hello\r\n");
        assert_eq!(t.text_parts().len(), 1);
        assert_eq!(t.raw, MSG);
        assert!(!t.truncated.any());
        assert_eq!(t.message.subject(), Some("café"));
    }

    #[test]
    fn oversize_is_not_parsed() {
        let env = Envelope::default();
        let t = Task::new(&env, MSG, 10);
        assert!(!t.parsed);
        assert!(t.text_parts().is_empty());
        assert!(
            t.header_values("subject").is_empty(),
            "no panic on an unparsed message"
        );
        assert_eq!(t.logical_header_lines().count(), 0);
        assert!(t.urls().is_empty());
        assert_eq!(t.attachments().count(), 0);
        assert!(t.received().is_empty());
    }
}

//! Random bytes never panic the request parser.

use mxguard_policy::protocol::RequestBuilder;
use proptest::prelude::*;

proptest! {
    #[test]
    fn random_lines_never_panic(lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..64)) {
        let mut b = RequestBuilder::default();
        for l in &lines {
            match b.line(l) {
                Ok(Some(req)) => { let _ = (req.stage(), req.client_ip(), req.client_name()); }
                Ok(None) => {}
                Err(_) => b = RequestBuilder::default(),
            }
        }
    }
}

proptest! {
    /// Stored greylist entries are hostile: any times, any clock, any
    /// settings, and the decision neither panics nor stores a first-seen
    /// time in the future.
    #[test]
    fn any_stored_entry_and_clock_never_panic(
        first in any::<u64>(), last in any::<u64>(), passed in any::<bool>(),
        now in any::<u64>(), delay in any::<u64>(), window in any::<u64>(),
        stored in any::<bool>(),
    ) {
        use mxguard_core::config::{GreylistConfig, Seconds};
        use mxguard_policy::greylist::{Decision, Entry, decide};
        let cfg = GreylistConfig {
            delay: Seconds(delay),
            retry_window: Seconds(window),
            ..Default::default()
        };
        let entry = stored.then_some(Entry { first, last, passed });
        let (d, e) = decide(entry, now, &cfg);
        prop_assert!(e.first <= now && e.last == now);
        match d {
            Decision::Greylist { remaining } => prop_assert!(remaining <= delay && !e.passed),
            Decision::Pass { delayed } => {
                prop_assert!(e.passed && now - e.first >= delay);
                prop_assert!(delayed.is_none_or(|s| s == now - e.first));
            }
        }
    }

    /// Senders, recipients and texts of any shape never panic the key or
    /// text builders.
    #[test]
    fn any_sender_recipient_or_text_never_panics(
        sender in ".{0,80}", recipient in ".{0,80}", text in ".{0,80}",
        remaining in any::<u64>(), etrn in any::<bool>(),
        ascii in "[a-zA-Z0-9_+=@.<>-]{0,40}",
    ) {
        use mxguard_policy::greylist::{expand_text, normalize_sender, triplet_key};
        for s in [&sender, &ascii] {
            let _ = normalize_sender(s);
            let _ = triplet_key("192.0.2.0/24", s, &recipient, false);
            let _ = triplet_key("192.0.2.0/24", s, &recipient, true);
        }
        let _ = expand_text(&text, remaining, &recipient, etrn);
    }
}

//! The macros a session keeps: only those it reads, each value bounded.
//!
//! Postfix sends a handful of macros per stage (those asked for at option
//! negotiation, or its `milter_*_macros` lists). A session once kept every
//! name it was sent, so a peer sending uniquely named macros grew it without
//! limit (200 MiB of them: +453 MiB RSS). Now a name outside [`KEPT`] is
//! ignored (it costs nothing: nothing reads it), and a value over
//! [`MAX_VALUE`] bytes is dropped and counted, so a session holds at most
//! `KEPT.len()` values of `MAX_VALUE` bytes.

/// The macros mxguard reads, by name without braces.
pub const KEPT: &[&str] = &[
    "j",
    "daemon_name",
    "client_addr",
    "client_name",
    "i",
    "auth_authen",
    "mail_addr",
    "rcpt_addr",
];

/// Macros that belong to one message and must not leak into the next.
pub const MESSAGE_MACROS: &[&str] = &["i", "auth_authen", "mail_addr", "rcpt_addr"];

/// The longest value kept: longer than any host name, queue id or address
/// Postfix passes (its SMTP lines are at most 2,048 bytes by default).
pub const MAX_VALUE: usize = 2048;

/// Why a macro was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Yes,
    /// Not one mxguard reads.
    Ignored,
    /// One mxguard reads, but over [`MAX_VALUE`]: dropped (and any earlier
    /// value of it forgotten).
    TooLong,
}

/// The kept macros of one session, one slot per name in [`KEPT`].
#[derive(Debug, Default)]
pub struct MacroStore {
    values: [Option<String>; KEPT.len()],
}

impl MacroStore {
    fn slot(name: &str) -> Option<usize> {
        KEPT.iter().position(|k| *k == name)
    }

    /// Keeps `value` for `name` (`i`, `{client_addr}`: braces optional)
    /// when mxguard reads that macro and the value is not too long.
    pub fn set(&mut self, name: &str, value: String) -> Kept {
        let bare = name.strip_prefix('{').unwrap_or(name);
        let bare = bare.strip_suffix('}').unwrap_or(bare);
        let Some(slot) = Self::slot(bare) else {
            return Kept::Ignored;
        };
        if value.len() > MAX_VALUE {
            self.values[slot] = None;
            return Kept::TooLong;
        }
        self.values[slot] = Some(value);
        Kept::Yes
    }

    /// The value of `name` (without braces), when kept.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values[Self::slot(name)?].as_deref()
    }

    pub fn remove(&mut self, name: &str) {
        if let Some(slot) = Self::slot(name) {
            self.values[slot] = None;
        }
    }

    /// Forgets the macros of the current message.
    pub fn clear_message(&mut self) {
        for m in MESSAGE_MACROS {
            self.remove(m);
        }
    }

    pub fn clear(&mut self) {
        self.values = Default::default();
    }

    /// How many values are kept.
    pub fn len(&self) -> usize {
        self.values.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of the values kept.
    pub fn bytes(&self) -> usize {
        self.values.iter().flatten().map(String::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_it_reads_and_bounds_values() {
        let mut m = MacroStore::default();
        assert_eq!(m.set("{client_addr}", "192.0.2.1".into()), Kept::Yes);
        assert_eq!(m.set("j", "mx.test".into()), Kept::Yes);
        assert_eq!(m.set("{cipher}", "TLS_AES".into()), Kept::Ignored);
        assert_eq!(m.set("{flood_1}", "x".into()), Kept::Ignored);
        assert_eq!(m.get("client_addr"), Some("192.0.2.1"));
        assert_eq!(m.get("cipher"), None);
        assert_eq!(m.set("{mail_addr}", "a@example.com".into()), Kept::Yes);
        assert_eq!(
            m.set("{mail_addr}", "a".repeat(MAX_VALUE + 1)),
            Kept::TooLong
        );
        assert_eq!(m.get("mail_addr"), None, "an over-long value replaces none");
        assert_eq!((m.len(), m.bytes()), (2, 16));
        m.set("i", "4AB12C".into());
        m.clear_message();
        assert_eq!(m.get("i"), None);
        assert_eq!(m.get("j"), Some("mx.test"));
        m.clear();
        assert!(m.is_empty());
    }
}

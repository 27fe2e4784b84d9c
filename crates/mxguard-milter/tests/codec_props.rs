//! Property tests of the codec: hostile bytes never panic it, and whatever
//! it encodes it decodes back.

use mxguard_milter::codec::{
    Command, DEFAULT_MAX_FRAME, Family, OptNeg, Reply, decode_commands, decode_frame,
    decode_replies,
};
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    // Any Unicode without NUL (NUL cannot travel inside a milter string).
    "[^\u{0}]{0,40}"
}

fn bytes_no_nul() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 0..200)
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(version, actions, protocol)| {
            Command::OptNeg(OptNeg {
                version,
                actions,
                protocol,
                macros: vec![],
            })
        }),
        (
            any::<u8>(),
            proptest::collection::vec((text(), text()), 0..5)
        )
            .prop_map(|(stage, pairs)| Command::Macro { stage, pairs }),
        (
            text(),
            prop_oneof![Just(Family::Unix), Just(Family::Inet), Just(Family::Inet6)],
            any::<u16>(),
            text()
        )
            .prop_map(|(hostname, family, port, address)| Command::Connect {
                hostname,
                family,
                port,
                address
            }),
        text().prop_map(|hostname| Command::Connect {
            hostname,
            family: Family::Unknown,
            port: 0,
            address: String::new()
        }),
        text().prop_map(Command::Helo),
        proptest::collection::vec(text(), 1..4).prop_map(Command::Mail),
        proptest::collection::vec(text(), 1..4).prop_map(Command::Rcpt),
        Just(Command::Data),
        (text(), bytes_no_nul()).prop_map(|(name, value)| Command::Header { name, value }),
        Just(Command::Eoh),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Command::Body),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Command::EndOfMessage),
        Just(Command::Abort),
        Just(Command::Quit),
        Just(Command::QuitNc),
        bytes_no_nul().prop_map(Command::Unknown),
    ]
}

fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec((any::<u32>(), text()), 0..4)
        )
            .prop_map(
                |(version, actions, protocol, macros)| Reply::OptNeg(OptNeg {
                    version,
                    actions,
                    protocol,
                    macros
                })
            ),
        Just(Reply::Continue),
        Just(Reply::Accept),
        Just(Reply::Reject),
        Just(Reply::Tempfail),
        Just(Reply::Discard),
        Just(Reply::ConnFail),
        Just(Reply::Shutdown),
        Just(Reply::Skip),
        Just(Reply::Progress),
        text().prop_map(Reply::ReplyCode),
        text().prop_map(Reply::Quarantine),
        (text(), bytes_no_nul()).prop_map(|(name, value)| Reply::AddHeader { name, value }),
        (any::<u32>(), text(), bytes_no_nul()).prop_map(|(index, name, value)| Reply::InsHeader {
            index,
            name,
            value
        }),
        (any::<u32>(), text(), bytes_no_nul()).prop_map(|(index, name, value)| Reply::ChgHeader {
            index,
            name,
            value
        }),
        text().prop_map(Reply::AddRcpt),
        (text(), proptest::option::of(text()))
            .prop_map(|(rcpt, args)| Reply::AddRcptPar { rcpt, args }),
        text().prop_map(Reply::DelRcpt),
        (text(), proptest::option::of(text()))
            .prop_map(|(from, args)| Reply::ChgFrom { from, args }),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Reply::ReplBody),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Random bytes: decoding returns a value or an error, never panics.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_commands(&bytes, DEFAULT_MAX_FRAME);
        let _ = decode_replies(&bytes, DEFAULT_MAX_FRAME);
        let _ = decode_frame(&bytes, 16);
    }

    /// Random data behind every valid code, with a correct length field.
    #[test]
    fn random_packets_never_panic(code in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Command::decode(code, &data);
        let _ = Reply::decode(code, &data);
        let mut framed = ((data.len() + 1) as u32).to_be_bytes().to_vec();
        framed.push(code);
        framed.extend_from_slice(&data);
        let _ = decode_commands(&framed, DEFAULT_MAX_FRAME);
        let _ = decode_replies(&framed, DEFAULT_MAX_FRAME);
    }

    #[test]
    fn commands_round_trip(cmds in proptest::collection::vec(command(), 1..6)) {
        let mut bytes = Vec::new();
        for c in &cmds {
            c.encode(&mut bytes);
        }
        prop_assert_eq!(decode_commands(&bytes, DEFAULT_MAX_FRAME).unwrap(), cmds);
    }

    #[test]
    fn replies_round_trip(replies in proptest::collection::vec(reply(), 1..6)) {
        let mut bytes = Vec::new();
        for r in &replies {
            r.encode(&mut bytes);
        }
        prop_assert_eq!(decode_replies(&bytes, DEFAULT_MAX_FRAME).unwrap(), replies);
    }

    /// A stream cut anywhere decodes the whole frames before the cut and
    /// reports no error for the partial one.
    #[test]
    fn cut_streams_are_partial_not_errors(cmds in proptest::collection::vec(command(), 1..4), cut in any::<prop::sample::Index>()) {
        let mut bytes = Vec::new();
        for c in &cmds {
            c.encode(&mut bytes);
        }
        let at = cut.index(bytes.len() + 1);
        let got = decode_commands(&bytes[..at], DEFAULT_MAX_FRAME).unwrap();
        prop_assert!(got.len() <= cmds.len());
        prop_assert_eq!(&got[..], &cmds[..got.len()]);
    }
}

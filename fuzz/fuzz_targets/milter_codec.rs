//! The milter codec, both directions: any bytes decode to packets or a
//! clear error; every packet that decodes encodes to bytes that decode to
//! the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxguard_milter::codec::{Command, Reply, decode_commands, decode_replies};

const MAX_FRAME: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(commands) = decode_commands(data, MAX_FRAME) {
        for c in commands {
            let bytes = c.to_bytes();
            let again = decode_commands(&bytes, usize::MAX).expect("re-encoded command decodes");
            assert_eq!(again.len(), 1);
            assert_eq!(format!("{:?}", again[0]), format!("{c:?}"));
            let _: &Command = &again[0];
        }
    }
    if let Ok(replies) = decode_replies(data, MAX_FRAME) {
        for r in replies {
            let bytes = r.to_bytes();
            let again = decode_replies(&bytes, usize::MAX).expect("re-encoded reply decodes");
            assert_eq!(again.len(), 1);
            assert_eq!(format!("{:?}", again[0]), format!("{r:?}"));
            let _: &Reply = &again[0];
        }
    }
});

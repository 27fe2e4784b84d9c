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

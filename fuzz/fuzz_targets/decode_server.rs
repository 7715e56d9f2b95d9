//! Untrusted bytes decoded as a server frame, in both codecs (what a client SDK does).
#![no_main]

use assist_relay_proto::{Codec, ServerFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for codec in Codec::ALL {
        let Ok(frame) = ServerFrame::decode(codec, data) else {
            continue;
        };
        // Whatever decodes re-encodes, in either codec, to the same frame.
        for out in Codec::ALL {
            let bytes = frame.encode(out).expect("a decoded frame encodes");
            let again = ServerFrame::decode(out, &bytes).expect("a re-encoded frame decodes");
            assert_eq!(
                again, frame,
                "decoded with {codec:?}, re-encoded with {out:?}"
            );
        }
    }
});

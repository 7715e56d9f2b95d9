//! Untrusted bytes on a Json connection, decoded as the relay decodes a client frame.
#![no_main]

use assist_relay_proto::{ClientFrame, Codec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frame = match ClientFrame::decode(Codec::Json, data) {
        Ok(frame) => frame,
        Err(e) => {
            // Every refusal maps to a stable wire code.
            let _ = e.code().as_str();
            return;
        }
    };
    // Whatever decodes re-encodes, in either codec, to the same frame.
    for codec in Codec::ALL {
        let bytes = frame.encode(codec).expect("a decoded frame encodes");
        let again = ClientFrame::decode(codec, &bytes).expect("a re-encoded frame decodes");
        assert_eq!(again, frame, "re-encoded with {codec:?}");
    }
});

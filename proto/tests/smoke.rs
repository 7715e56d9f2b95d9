use assist_relay_proto::*;

#[test]
fn event_roundtrips_raw_in_both_codecs() {
    let src = br#"{"type":"event","id":"e1","event":{"type":3,"data":{"source":1,"positions":[{"x":1}]},"timestamp":1700000000000.5},"unknown":42}"#;
    let f = ClientFrame::decode(Codec::Json, src).expect("decode");
    let ClientFrame::Event { head, event, .. } = &f else {
        panic!()
    };
    assert_eq!(head.kind, EventKind::IncrementalSnapshot);
    assert_eq!(head.source, Some(1));
    assert_eq!(
        event.json(),
        r#"{"type":3,"data":{"source":1,"positions":[{"x":1}]},"timestamp":1700000000000.5}"#
    );
    let mp = f.encode(Codec::MsgPack).unwrap();
    let g = ClientFrame::decode(Codec::MsgPack, &mp).expect("mp decode");
    assert_eq!(f, g);
    let s = ServerFrame::Event {
        offset: 7,
        event: event.clone(),
    };
    let j = s.encode(Codec::Json).unwrap();
    println!("{}", String::from_utf8_lossy(&j));
    assert_eq!(ServerFrame::decode(Codec::Json, &j).unwrap(), s);
    let m = s.encode(Codec::MsgPack).unwrap();
    assert_eq!(ServerFrame::decode(Codec::MsgPack, &m).unwrap(), s);
}

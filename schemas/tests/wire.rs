//! The wire contract: round trips, and clear refusals of anything else.

use lfr_schemas::wire::{with_version, Kind};
use lfr_schemas::*;

fn frame() -> Frame {
    Frame {
        source: FrameRef {
            camera: "gate-1".into(),
            epoch: Timestamp(1),
            seq: 42,
            captured_at: Timestamp::now(),
        },
        width: 640,
        height: 480,
        jpeg: vec![0xFF, 0xD8, 1, 2, 3].into(),
    }
}

#[test]
fn frame_round_trips() {
    let f = frame();
    assert_eq!(Frame::decode(&f.encode()).unwrap(), f);
}

#[test]
fn wrong_version_is_refused_with_a_clear_reason() {
    let bytes = with_version(frame().encode(), 9);
    let err = Frame::decode(&bytes).unwrap_err();
    assert_eq!(err.reason(), "unsupported_version");
    assert!(err.to_string().contains("version 9"), "{err}");
}

#[test]
fn wrong_kind_is_refused() {
    let event = AuditEvent {
        event_id: "e1".into(),
        at: Timestamp::now(),
        action: AuditAction::Consultation,
        actor: "op-1".into(),
        role: "operator".into(),
        deployment: None,
        object: "alert/1".into(),
        justification: "review".into(),
        recipients: vec![],
        digest: None,
        prev_hash: AuditEvent::GENESIS_HASH.into(),
        hash: String::new(),
    };
    let err = Frame::decode(&event.encode()).unwrap_err();
    assert!(matches!(
        err,
        WireError::WrongKind {
            expected: Kind::Frame,
            found: Some(Kind::AuditEvent),
            ..
        }
    ));
}

#[test]
fn garbage_truncation_and_trailing_bytes_never_panic() {
    assert_eq!(Frame::decode(b"").unwrap_err().reason(), "not_lfr");
    assert_eq!(
        Frame::decode(b"hello world").unwrap_err().reason(),
        "not_lfr"
    );
    let good = frame().encode();
    for cut in 4..good.len() {
        assert_eq!(
            Frame::decode(&good[..cut]).unwrap_err().reason(),
            "malformed"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(Frame::decode(&longer).unwrap_err().reason(), "malformed");
}

#[test]
fn a_huge_length_prefix_is_refused_without_allocating() {
    // header + camera string length claiming 2^62 bytes
    let mut bytes = frame().encode()[..4].to_vec();
    bytes.extend_from_slice(&[0xFD, 0, 0, 0, 0, 0, 0, 0, 0x40]);
    assert_eq!(Frame::decode(&bytes).unwrap_err().reason(), "malformed");
}

#[test]
fn image_bytes_never_appear_in_debug_output() {
    let f = frame();
    let shown = format!("{f:?}");
    assert!(shown.contains("5 bytes redacted"), "{shown}");
}

//! Event parsing: any bytes are an event or an error that says why, never a panic; an event's
//! outgoing body is itself a valid event with the same id, type, time and data.
#![no_main]

use std::collections::HashMap;

use hookrelay_shared::event::{is_valid_id, is_valid_type, parse_event, rfc3339};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let received_at = OffsetDateTime::UNIX_EPOCH;
    // The first byte picks a size limit, so "too large" is explored too.
    let (limit, bytes) = match data.split_first() {
        Some((&b, rest)) if b < 16 => (usize::from(b) * 16, rest),
        _ => (usize::MAX, data),
    };
    match parse_event(bytes, limit, received_at) {
        Err(e) => assert!(!e.to_string().is_empty()),
        Ok(e) => {
            assert!(is_valid_type(&e.event_type), "{:?}", e.event_type);
            assert!(is_valid_id(&e.id), "{:?}", e.id);
            assert!((1..=9999).contains(&e.occurred_at.year()));
            // As raw JSON: `data` passes through as written, also numbers beyond what an f64
            // (and so serde_json::Value) holds, such as 7e999.
            let body: HashMap<String, Box<RawValue>> =
                serde_json::from_str(&e.body).expect("the body is JSON");
            assert_eq!(body.len(), 4);
            let again =
                parse_event(e.body.as_bytes(), usize::MAX, received_at).expect("the body is an event");
            assert_eq!(again.id, e.id);
            assert_eq!(again.event_type, e.event_type);
            // The body's `timestamp` is the time, to the millisecond, in UTC.
            assert_eq!(body["timestamp"].get(), format!("\"{}\"", rfc3339(e.occurred_at)));
            let again_body: HashMap<String, Box<RawValue>> = serde_json::from_str(&again.body).expect("JSON");
            assert_eq!(again_body["data"].get(), body["data"].get());
        }
    }
});

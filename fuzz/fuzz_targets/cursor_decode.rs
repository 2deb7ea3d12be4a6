//! Cursor decoding: any text is a cursor or a 400, never a panic, for every sort and order; a
//! decoded cursor re-encodes to one that decodes to the same position. The first byte picks
//! whether the rest is the raw cursor text or JSON to wrap in base64url (so the fuzzer reaches
//! the validation of the content, not only of the encoding).
#![no_main]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hookrelay_query_api::{
    cursor::{Cursor, SortKey},
    error::AppError,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let raw = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        URL_SAFE_NO_PAD.encode(rest)
    };
    for sort in [SortKey::AttemptedAt, SortKey::Status, SortKey::ResponseCode] {
        for descending in [true, false] {
            match Cursor::decode(&raw, sort, descending) {
                Err(e) => assert!(
                    matches!(&e, AppError::BadRequest(m) if m.starts_with("cursor: ")),
                    "{e:?}"
                ),
                Ok(c) => {
                    let again = Cursor::decode(&c.encode(sort, descending), sort, descending)
                        .expect("a re-encoded cursor decodes");
                    assert_eq!(again, c);
                    assert!(
                        Cursor::decode(&raw, sort, !descending).is_err(),
                        "the order is checked"
                    );
                }
            }
        }
    }
});

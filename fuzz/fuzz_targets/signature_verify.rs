//! Signature verification: any secret text, id, timestamp, body, header, clock and tolerance
//! are handled without panic; what the signer produces always verifies, also among junk
//! entries; freshness is exactly `|now - timestamp| <= tolerance`.
#![no_main]

use arbitrary::Arbitrary;
use hookrelay_shared::signature::{Secret, sign_header, verify, verify_fresh};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    secret: &'a str,
    id: &'a str,
    timestamp: i64,
    body: &'a [u8],
    header: &'a str,
    now: i64,
    tolerance: i64,
}

fuzz_target!(|input: Input<'_>| {
    let _ = Secret::parse_strict(input.secret);
    let secret = match Secret::parse(input.secret) {
        Ok(s) => {
            assert_eq!(Secret::parse(&s.expose()).as_ref(), Ok(&s));
            s
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a valid secret")
        }
    };
    let Input {
        id,
        timestamp,
        body,
        header,
        now,
        tolerance,
        ..
    } = input;

    // Arbitrary headers: whatever the answer, no panic, and the fresh check is the plain
    // check plus the exact time distance.
    let valid = verify(&secret, id, timestamp, body, header);
    let fresh = (i128::from(now) - i128::from(timestamp)).abs() <= i128::from(tolerance);
    assert_eq!(
        verify_fresh(&secret, id, timestamp, body, header, now, tolerance),
        valid && fresh
    );

    // Our own signature verifies, alone, in a rotation header and beside the fuzzer's entries.
    let own = secret.sign(id, timestamp, body);
    assert!(verify(&secret, id, timestamp, body, &own));
    let rotation = sign_header(&[Secret::generate(), secret.clone()], id, timestamp, body);
    assert!(verify(&secret, id, timestamp, body, &rotation));
    let mixed = format!("{header} {own}");
    assert!(verify(&secret, id, timestamp, body, &mixed));
    assert_eq!(
        verify_fresh(&secret, id, timestamp, body, &mixed, now, tolerance),
        fresh
    );
});

//! Arbitrary bytes as the answer to `GET /teams/{id}/api_keys`, through the
//! path the client and the sweep take: decode, id check, admission.
//!
//! Properties:
//! - a list that decodes names only MASV ids (nothing else can reach a URL);
//! - every key is either manageable (a name fit for a Vault path segment, of
//!   bounded size) or refused with a reason; deciding never panics;
//! - an error's message has no raw control character and is bounded, whatever
//!   the answer held (it reaches logs and terminals).
#![no_main]

use libfuzzer_sys::fuzz_target;
use masv_key_rotator::engine::admission;
use masv_key_rotator::masv::ids::is_masv_id;
use masv_key_rotator::masv::types::{DESCRIPTION_MAX_BYTES, NAME_MAX_BYTES};
use masv_key_rotator::masv::decode_key_list;

fuzz_target!(|data: &[u8]| {
    match decode_key_list("list api keys of team T", data) {
        Ok(keys) => {
            for key in &keys {
                assert!(is_masv_id(&key.id), "{:?}", key.id);
                if admission::problem(key).is_none() {
                    assert!(!key.name.is_empty() && key.name.len() <= NAME_MAX_BYTES);
                    assert!(!key.name.contains('/') && !key.name.chars().any(char::is_control));
                    assert!(key.description.len() <= DESCRIPTION_MAX_BYTES);
                }
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
            assert!(shown.chars().count() < 600, "{}", shown.len());
        }
    }
});

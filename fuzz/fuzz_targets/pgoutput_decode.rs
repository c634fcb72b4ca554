//! The pgoutput decoder on arbitrary bytes: it must return a message or a
//! `DecodeError`, never panic, and a decoded Insert/Update/Delete must be
//! encodable as event values.
#![no_main]

use kinesync::encode::encode_tuple_value;
use kinesync::source::pgoutput::{decode, LogicalMessage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = decode(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    let tuples = match &message {
        LogicalMessage::Insert { new, .. } => vec![new],
        LogicalMessage::Update { old, new, .. } => {
            old.iter().map(|(_, t)| t).chain([new]).collect()
        }
        LogicalMessage::Delete { old, .. } => vec![&old.1],
        _ => Vec::new(),
    };
    for (i, value) in tuples.into_iter().flatten().enumerate() {
        // Any column type: cycle through a few with their own encodings.
        let oid = [25, 23, 1700, 701, 1184, 1114, 17, 3802, 1009, 1007][i % 10];
        let _ = serde_json::to_string(&encode_tuple_value(oid, value));
    }
});

//! The `compact` cookie-cache decoder on arbitrary input.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use sessiond::crypto::cache::{CacheCodec, Strategy};

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static CODEC: CacheCodec = CacheCodec::new(Strategy::Compact, common::SECRET, &[]);
    }
    CODEC.with(|codec| common::cache(Strategy::Compact, codec, data));
});

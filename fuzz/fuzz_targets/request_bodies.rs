//! Every route's request body, parsed and validated as the route does: any bytes, any of
//! the content types clients send. The answer is `Ok` or a 4xx, never a panic or a 5xx.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiond::http::bodies::{validate, ROUTES};

const TYPES: [Option<&str>; 6] = [
    None,
    Some("application/json"),
    Some("application/x-www-form-urlencoded"),
    Some("text/plain"),
    Some("application/json; charset=utf-8"),
    Some("APPLICATION/JSON"),
];

fuzz_target!(|data: &[u8]| {
    let [route, ct, body @ ..] = data else {
        return;
    };
    let route = ROUTES[usize::from(*route) % ROUTES.len()];
    let ct = TYPES[usize::from(*ct) % TYPES.len()];
    if let Err(e) = validate(route, ct, body) {
        assert!(e.status.is_client_error(), "{route}: {}", e.status);
    }
});

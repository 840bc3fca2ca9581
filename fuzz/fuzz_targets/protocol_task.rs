//! The JSON task protocol (anti-captcha, CapMonster, CapSolver, 2captcha v2): a request body
//! read as `/createTask` and the other task endpoints read it.
#![no_main]

use aiocr::server::fuzzing::read_task;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    read_task(data);
});

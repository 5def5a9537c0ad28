//! The .npy reader: arbitrary bytes give a tensor or a clear error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = convt::call::Tensor::from_npy_bytes(data, "fuzz.npy") {
        let _ = t.shape();
    }
});

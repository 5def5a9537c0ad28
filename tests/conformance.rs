//! The real frameworks' cases (tests/fixtures/conformance, produced by TensorFlow 2.21 and
//! PyTorch 2.15) through the library's call API and through the `convt` binary.
//! ONNX Runtime's cases are in tests/onnx.rs.

mod common;
use common::{cases, check_api, check_cli};

#[test]
fn tensorflow_cases_through_the_api() {
    assert_eq!(check_api(&cases("conformance", "tf.")), 180);
}

#[test]
fn tensorflow_cases_through_the_cli() {
    check_cli(&cases("conformance", "tf."));
}

#[test]
fn pytorch_cases_through_the_api() {
    assert_eq!(check_api(&cases("conformance", "torch.")), 92);
}

#[test]
fn pytorch_cases_through_the_cli() {
    check_cli(&cases("conformance", "torch."));
}

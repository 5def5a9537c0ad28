//! ONNX `Conv` / `ConvTranspose` against cases produced by ONNX Runtime 1.32
//! (tests/fixtures/onnx, made by tools/gen_onnx_fixtures.py), and one test per place
//! where ONNX Runtime, the ONNX spec and the ONNX reference evaluator disagree: convt
//! follows ONNX Runtime (the table in `convt::onnx`'s docs).

mod common;
use common::{api_args, cases, check_api, check_cli, judge};
use convt::call;

#[test]
fn onnx_runtime_cases_through_the_api() {
    assert!(check_api(&cases("onnx", "onnx.")) > 140);
}

#[test]
fn onnx_runtime_cases_through_the_cli() {
    check_cli(&cases("onnx", "onnx."));
}

fn shape_of(id: &str) -> Result<Vec<usize>, String> {
    let case = cases("onnx", id).into_iter().find(|c| c.id == id).unwrap();
    let got = call::run(&case.op, &api_args(&case));
    if let Some(failure) = judge(&case, got.clone()) {
        return Err(failure);
    }
    got.map(|t| t.shape()).map_err(|e| e.to_string())
}

/// SAME_* with output_padding: shape inference says I*s + op (7), ORT computes I*s (6).
#[test]
fn divergence_same_with_output_padding_follows_runtime() {
    for mode in ["SAME_UPPER", "SAME_LOWER"] {
        assert_eq!(
            shape_of(&format!("div_same_output_padding_{mode}")).unwrap(),
            vec![1, 1, 6, 6]
        );
    }
}

/// SAME_* with an effective kernel below the stride: the reference evaluator gives I*s
/// (12) with an extra zero; ORT clamps the total padding at 0 and gives F (11).
#[test]
fn divergence_same_kernel_below_stride_follows_runtime() {
    for mode in ["SAME_UPPER", "SAME_LOWER"] {
        assert_eq!(
            shape_of(&format!("div_same_kernel_below_stride_{mode}")).unwrap(),
            vec![1, 1, 11, 11]
        );
    }
}

/// output_shape below F with NOTSET: the reference evaluator refuses; ORT derives the pads
/// with the odd one at the start. ORT accepts 1..=F+s-1 (8 here) and refuses 9.
#[test]
fn divergence_output_shape_range_follows_runtime() {
    for ot in [1, 4, 6, 7, 8] {
        assert_eq!(
            shape_of(&format!("div_output_shape_{ot}")).unwrap(),
            vec![1, 1, ot, ot]
        );
        assert_eq!(
            shape_of(&format!("div_output_shape_upper_{ot}")).unwrap(),
            vec![1, 1, ot, 7]
        );
    }
    assert!(shape_of("div_output_shape_9")
        .unwrap_err()
        .contains("legal"));
    assert!(shape_of("div_output_shape_with_n_c").is_err());
}

/// output_padding: the spec says "less than stride or dilation"; ORT refuses op >= s.
#[test]
fn divergence_output_padding_bound_follows_runtime() {
    assert!(shape_of("div_output_padding_ge_stride")
        .unwrap_err()
        .contains("output_padding"));
    assert!(shape_of("div_output_padding_below_dilation")
        .unwrap_err()
        .contains("output_padding"));
}

/// Grouped ConvTranspose: the reference evaluator fails; ORT (and convt) compute it.
#[test]
fn divergence_grouped_conv_transpose_follows_runtime() {
    assert_eq!(shape_of("div_grouped").unwrap(), vec![1, 6, 6, 6]);
}

/// Conv SAME_* with dilation: defined by the spec, refused by ORT, refused by convt.
#[test]
fn divergence_conv_same_dilated_is_refused_like_runtime() {
    assert!(shape_of("div_conv_same_dilated")
        .unwrap_err()
        .contains("dilation"));
}

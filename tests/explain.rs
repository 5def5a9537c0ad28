//! `convt explain`: the text, the SVG and the refusal explanation, on the seed's call.

use convt::call::{Arg, Args, Tensor};
use convt::explain::{explain, refusal, svg};
use serde_json::json;
use std::path::Path;

fn seed_args(with_arrays: bool) -> Args {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conformance");
    let mut args = Args::new();
    if with_arrays {
        args.insert(
            "input",
            Arg::Tensor(Tensor::read_npy(&fixtures.join("seed_example_input.npy")).unwrap()),
        );
        args.insert(
            "filters",
            Arg::Tensor(Tensor::read_npy(&fixtures.join("seed_example_filters.npy")).unwrap()),
        );
    } else {
        args.insert("input_shape", Arg::Json(json!([1, 3, 3, 1])));
        args.insert("filters_shape", Arg::Json(json!([2, 2, 1, 1])));
    }
    args.insert("output_shape", Arg::Json(json!([1, 6, 6, 1])));
    args.insert("strides", Arg::Json(json!([1, 2, 2, 1])));
    args.insert("padding", Arg::Json(json!("SAME")));
    args
}

#[test]
fn seed_explanation_reproduces_the_table_and_the_stamps() {
    let e = explain("tf.nn.conv2d_transpose", &seed_args(true)).unwrap();
    let text = e.text();
    // The seed's 6x6 table, as the result grid.
    for row in [
        "0   0   0   0 1.5   3",
        "0   0   0   0 4.5   6",
        "0   0   1   2   0   0",
        "0   0   3   4   0   0",
    ] {
        assert!(text.contains(row), "missing row {row}:\n{text}");
    }
    assert!(text.contains("input[0,2] = 1.5: 1.5 x kernel = [1.5 3; 4.5 6] lands on output rows 0..1, columns 4..5"), "{text}");
    assert!(
        text.contains("legal output sizes for input 3: 5, 6"),
        "{text}"
    );
    assert!(text.contains("pad it with [[1, 1], [1, 1]]"), "{text}");
    assert!(
        text.contains("torch.nn.functional.conv_transpose2d") && text.contains("ConvTranspose"),
        "{text}"
    );
    // The matrix view: 9 rows (one per input cell of the forward conv's output) of 36.
    let m = e.matrix().unwrap().unwrap();
    assert_eq!((m.taps.len(), m.taps[0].len()), (9, 36));
    // Each row holds the four taps once: the forward conv reads a 2x2 window.
    assert!(m.taps.iter().all(|r| r.iter().flatten().count() == 4));
}

#[test]
fn stamps_agree_with_the_computed_result() {
    // Sum of value x tap over the stamps equals convt's own result, for a call with
    // cropping (SAME, kernel 3, stride 2) and shapes read from the stamps alone.
    let mut args = Args::new();
    let x = ndarray::ArrayD::from_shape_fn(vec![1, 3, 4, 1], |i| (i[1] * 4 + i[2]) as f64 - 5.0);
    let f = ndarray::ArrayD::from_shape_fn(vec![3, 3, 1, 1], |i| (i[0] * 3 + i[1]) as f64 + 1.0);
    args.insert("input", Arg::Tensor(Tensor::F64(x.clone())));
    args.insert("filters", Arg::Tensor(Tensor::F64(f.clone())));
    args.insert("output_shape", Arg::Json(json!([1, 6, 7, 1])));
    args.insert("strides", Arg::Json(json!(2)));
    args.insert("padding", Arg::Json(json!("SAME")));
    let e = explain("tf.nn.conv2d_transpose", &args).unwrap();
    let mut sum = ndarray::Array2::<f64>::zeros((6, 7));
    for s in e.stamps().unwrap() {
        for (kh, kw, r, c) in s.taps {
            sum[[r, c]] += x[[0, s.row, s.col, 0]] * f[[kh, kw, 0, 0]];
        }
    }
    assert_eq!(sum, e.result.unwrap().slice(ndarray::s![0, .., .., 0]));
}

#[test]
fn svg_draws_every_panel() {
    let e = explain("tf.nn.conv2d_transpose", &seed_args(true)).unwrap();
    let picture = svg::render(&e).unwrap();
    assert!(picture.starts_with("<svg") && picture.trim_end().ends_with("</svg>"));
    for title in [
        "input 3x3",
        "zero-stuffed, padded 7x7",
        "kernel 2x2",
        "output 6x6",
    ] {
        assert!(picture.contains(title), "missing {title}");
    }
    // 9 + 49 + 4 + 36 cells, each with a border rect.
    assert!(
        picture.matches("<rect").count() >= 98,
        "{}",
        picture.matches("<rect").count()
    );
    assert!(picture.contains(">1.5<") && picture.contains(">4.5<"));
}

#[test]
fn refused_call_names_the_rule_and_the_legal_shapes() {
    let mut args = seed_args(false);
    args.insert("output_shape", Arg::Json(json!([1, 7, 4, 1])));
    let err = explain("tf.nn.conv2d_transpose", &args).unwrap_err();
    let text = refusal("tf.nn.conv2d_transpose", &args, &err);
    assert!(text.contains("height 7 is not legal"), "{text}");
    assert!(
        text.contains("[1,5,5,1], [1,5,6,1], [1,6,5,1], [1,6,6,1]"),
        "{text}"
    );
}

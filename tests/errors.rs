//! Every refusal rule of SEMANTICS.md section 5 gives a typed error naming the argument
//! and the legal values; random, mostly invalid calls never panic.

use convt::call::{self, Arg, Args, Tensor};
use convt::layout::DataFormat;
use convt::{reference, ConvError, Direction};
use ndarray::{Array4, ArrayD, IxDyn};
use proptest::prelude::*;
use serde_json::{json, Value};

fn tensor(shape: &[usize]) -> Arg {
    let n: usize = shape.iter().product();
    Arg::Tensor(Tensor::F64(ArrayD::from_shape_fn(IxDyn(shape), |i| {
        use ndarray::Dimension;
        ((i.as_array_view().sum() * 7 + n) % 5) as f64 - 2.0
    })))
}

fn call(op: &str, arrays: &[(&str, &[usize])], values: Value) -> convt::Result<Tensor> {
    let mut args = Args::new();
    for (name, shape) in arrays {
        args.insert(name, tensor(shape));
    }
    for (name, v) in values.as_object().unwrap() {
        args.insert(name, Arg::Json(v.clone()));
    }
    call::run(op, &args)
}

fn conv2d(input: &[usize], filters: &[usize], values: Value) -> convt::Result<Tensor> {
    call(
        "tf.nn.conv2d",
        &[("input", input), ("filters", filters)],
        values,
    )
}

fn transpose(input: &[usize], filters: &[usize], values: Value) -> convt::Result<Tensor> {
    call(
        "tf.nn.conv2d_transpose",
        &[("input", input), ("filters", filters)],
        values,
    )
}

fn message(r: convt::Result<Tensor>) -> (ConvError, String) {
    let e = r.expect_err("must be refused");
    let m = e.to_string();
    (e, m)
}

#[test]
fn wrong_rank() {
    let (e, m) = message(conv2d(
        &[7, 7, 4],
        &[3, 3, 4, 2],
        json!({"padding": "SAME"}),
    ));
    assert!(
        matches!(e, ConvError::Rank { .. }) && m.contains("`input`") && m.contains("4-dimensional"),
        "{m}"
    );
    let (e, m) = message(conv2d(
        &[1, 7, 7, 4],
        &[3, 3, 4],
        json!({"padding": "SAME"}),
    ));
    assert!(
        matches!(e, ConvError::Rank { .. }) && m.contains("`filters`"),
        "{m}"
    );
}

#[test]
fn channel_mismatches() {
    // Input depth not a multiple of the filter's in-depth.
    let (e, m) = message(conv2d(
        &[1, 7, 7, 4],
        &[3, 3, 3, 2],
        json!({"padding": "SAME"}),
    ));
    assert!(
        matches!(e, ConvError::Channels { .. }) && m.contains("multiple of 3"),
        "{m}"
    );
    // Output channels not divisible by groups (4 / 2 = 2 groups, 5 outputs).
    let (e, m) = message(conv2d(
        &[1, 7, 7, 4],
        &[3, 3, 2, 5],
        json!({"padding": "SAME"}),
    ));
    assert!(
        matches!(e, ConvError::Channels { .. }) && m.contains("groups 2"),
        "{m}"
    );
    // Transpose: filter in_channels (dim 3) != input channels.
    let (e, m) = message(transpose(
        &[1, 3, 3, 4],
        &[2, 2, 1, 3],
        json!({"output_shape": [1, 6, 6, 1], "strides": 2, "padding": "SAME"}),
    ));
    assert!(
        matches!(e, ConvError::Channels { .. })
            && m.contains("`filters`")
            && m.contains("legal: 4"),
        "{m}"
    );
    // Transpose: output_shape channels not a multiple of filter dim 2.
    let (e, m) = message(transpose(
        &[1, 3, 3, 1],
        &[2, 2, 2, 1],
        json!({"output_shape": [1, 6, 6, 3], "strides": 2, "padding": "SAME"}),
    ));
    assert!(
        matches!(e, ConvError::Channels { .. })
            && m.contains("`output_shape`")
            && m.contains("multiple of 2"),
        "{m}"
    );
}

#[test]
fn illegal_output_shape_lists_the_legal_sizes() {
    let (e, m) = message(transpose(
        &[1, 3, 3, 1],
        &[2, 2, 1, 1],
        json!({"output_shape": [1, 7, 6, 1], "strides": 2, "padding": "SAME"}),
    ));
    assert_eq!(
        e,
        ConvError::IllegalOutputSize {
            arg: "output_shape".into(),
            axis: "height".into(),
            got: 7,
            legal: vec![5, 6]
        },
        "{m}"
    );
    // VALID, kernel 3, stride 2, dy 3: legal {7, 8}.
    let (e, _) = message(transpose(
        &[1, 3, 3, 1],
        &[3, 3, 1, 1],
        json!({"output_shape": [1, 6, 7, 1], "strides": 2, "padding": "VALID"}),
    ));
    assert!(
        matches!(e, ConvError::IllegalOutputSize { ref legal, got: 6, .. } if legal == &vec![7, 8])
    );
    // Batch mismatch, wrong length, negative entry.
    let (_, m) = message(transpose(
        &[2, 3, 3, 1],
        &[2, 2, 1, 1],
        json!({"output_shape": [1, 6, 6, 1], "strides": 2, "padding": "SAME"}),
    ));
    assert!(m.contains("batch") && m.contains("legal: 2"), "{m}");
    let (e, _) = message(transpose(
        &[1, 3, 3, 1],
        &[2, 2, 1, 1],
        json!({"output_shape": [1, 6, 6], "strides": 2, "padding": "SAME"}),
    ));
    assert!(matches!(e, ConvError::Length { .. }));
    let (_, m) = message(transpose(
        &[1, 3, 3, 1],
        &[2, 2, 1, 1],
        json!({"output_shape": [1, -5, 6, 1], "strides": 2, "padding": "SAME"}),
    ));
    assert!(m.contains("-5") && m.contains(">= 0"), "{m}");
    // The 2-entry spatial form of the raw op is accepted.
    let r = call(
        "tf.raw_ops.Conv2DBackpropInput",
        &[("filter", &[2, 2, 1, 1]), ("out_backprop", &[1, 3, 3, 1])],
        json!({"input_sizes": [6, 5], "strides": [1, 2, 2, 1], "padding": "SAME"}),
    );
    assert_eq!(r.unwrap().shape(), vec![1, 6, 5, 1]);
}

/// A weight dimension times the groups that overflows (found by fuzzing with overflow
/// checks on) is refused as too large, naming the weight, in PyTorch's and ONNX's
/// grouped ops; shapes only, so nothing is allocated.
#[test]
fn grouped_channels_that_overflow() {
    let huge = 1usize << 62;
    for (op, input, weight, w, groups) in [
        (
            "torch.nn.functional.conv_transpose2d",
            "input",
            "weight",
            "weight",
            "groups",
        ),
        (
            "torch.nn.functional.conv2d",
            "input",
            "weight",
            "weight",
            "groups",
        ),
        ("onnx.ConvTranspose", "X", "W", "W", "group"),
        ("onnx.Conv", "X", "W", "W", "group"),
    ] {
        let mut args = Args::new();
        args.insert(&format!("{input}_shape"), Arg::Json(json!([1, 8, 3, 3])));
        args.insert(
            &format!("{weight}_shape"),
            Arg::Json(json!([8, huge, 1, 1])),
        );
        args.insert(groups, Arg::Json(json!(8)));
        let e = call::problem(op, &args).expect_err("must be refused");
        let m = e.to_string();
        assert!(
            matches!(e, ConvError::TooLarge { .. })
                && m.contains(&format!("`{w}`"))
                && m.contains("overflows"),
            "{op}: {m}"
        );
    }
}

/// A problem built or changed by hand (its fields are public) is checked by every
/// computing entry point: a zero stride, an output size the padding does not give, and
/// window positions past 2^62 (found by fuzzing with overflow checks on: a 2^63 stride
/// and padding) are typed errors naming the axis, in all three directions and in the
/// reference, never a panic.
#[test]
fn hand_built_problems_are_checked() {
    use convt::problem::{Axis, AxisPadding, Problem, Taps};
    let axis = Axis::forward("height", 5, Taps::new(3, 1, 1), AxisPadding::Valid).unwrap();
    let good = Problem::new(1, 2, 2, 1, axis, axis).unwrap();
    let huge = (1usize << 63) - 256;
    let mut zero_stride = good;
    zero_stride.height.stride = 0;
    let mut wrong_output = good;
    wrong_output.width.output = 4;
    let mut far = good;
    (
        far.height.stride,
        far.height.pad_before,
        far.height.pad_after,
    ) = (huge, huge, huge as i64);
    for (p, kind, words) in [
        (zero_stride, "NotPositive", "strides (height)"),
        (wrong_output, "Argument", "the forward rule gives 3"),
        (far, "TooLarge", "2^62"),
    ] {
        let x = Array4::<f64>::zeros(p.input_shape());
        let w = Array4::<f64>::zeros(p.filter_shape());
        let dy = Array4::<f64>::zeros(p.output_shape());
        let results = [
            convt::conv::forward(&p, x.view(), w.view()).err(),
            convt::conv::backward_data(&p, dy.view(), w.view()).err(),
            convt::conv::backward_filter(&p, x.view(), dy.view()).err(),
            convt::conv::forward_in(DataFormat::Nchw, &p, x.view(), w.view()).err(),
            reference::forward(&p, x.view(), w.view()).err(),
            reference::backward_data(&p, dy.view(), w.view()).err(),
            reference::backward_filter(&p, x.view(), dy.view()).err(),
        ];
        for e in results {
            let e = e.expect("must be refused");
            let m = e.to_string();
            assert!(
                format!("{e:?}").starts_with(kind) && m.contains(words),
                "{kind}: {m}"
            );
        }
        assert!(Problem::new(1, 2, 2, 1, p.height, p.width).is_err());
    }
}

#[test]
fn strides_dilations_groups() {
    for (arg, bad) in [
        ("strides", json!(0)),
        ("strides", json!([1, -1])),
        ("dilations", json!([0, 1])),
    ] {
        let (e, m) = message(conv2d(
            &[1, 7, 7, 1],
            &[3, 3, 1, 1],
            json!({"padding": "SAME", arg: bad}),
        ));
        assert!(
            matches!(e, ConvError::NotPositive { .. }) && m.contains(arg) && m.contains(">= 1"),
            "{m}"
        );
    }
    let (e, m) = message(conv2d(
        &[1, 7, 7, 1],
        &[3, 3, 1, 1],
        json!({"padding": "SAME", "strides": [2, 1, 1, 1]}),
    ));
    assert!(
        matches!(e, ConvError::BatchOrChannelEntry { .. }) && m.contains("[1, h, w, 1]"),
        "{m}"
    );
    let (e, m) = message(conv2d(
        &[1, 7, 7, 1],
        &[3, 3, 1, 1],
        json!({"padding": "SAME", "dilations": [1, 1, 1]}),
    ));
    assert!(
        matches!(e, ConvError::Length { .. }) && m.contains("1, 2 or 4"),
        "{m}"
    );
    let (e, _) = message(conv2d(
        &[1, 7, 7, 1],
        &[3, 3, 1, 1],
        json!({"padding": "SAME", "strides": [1, 1, 1, 2], "data_format": "NCHW"}),
    ));
    assert!(matches!(
        e,
        ConvError::Channels { .. }
            | ConvError::Rank { .. }
            | ConvError::KernelTooLarge { .. }
            | ConvError::BatchOrChannelEntry { .. }
    ));
}

#[test]
fn padding_rules() {
    let (e, m) = message(conv2d(
        &[1, 7, 7, 1],
        &[3, 3, 1, 1],
        json!({"padding": [[0, 0], [-1, 1], [1, 1], [0, 0]]}),
    ));
    assert!(
        matches!(e, ConvError::Negative { .. }) && m.contains(">= 0"),
        "{m}"
    );
    let (e, m) = message(conv2d(
        &[1, 7, 7, 1],
        &[3, 3, 1, 1],
        json!({"padding": [[1, 1], [1, 1], [0, 0]]}),
    ));
    assert!(
        matches!(e, ConvError::Length { .. }) && m.contains("4 [before, after] pairs"),
        "{m}"
    );
    let (e, m) = message(conv2d(
        &[1, 7, 7, 1],
        &[3, 3, 1, 1],
        json!({"padding": [[1, 0], [1, 1], [1, 1], [0, 0]]}),
    ));
    assert!(
        matches!(e, ConvError::BatchOrChannelEntry { .. }) && m.contains("[[0, 0], [top, bottom]"),
        "{m}"
    );
    for bad in ["FULL", "same", "EXPLICIT"] {
        let (e, m) = message(conv2d(
            &[1, 7, 7, 1],
            &[3, 3, 1, 1],
            json!({"padding": bad}),
        ));
        assert!(
            matches!(e, ConvError::UnknownValue { .. }) && m.contains("\"SAME\", \"VALID\""),
            "{bad}: {m}"
        );
    }
    let (e, _) = message(call(
        "tf.raw_ops.Conv2DBackpropFilter",
        &[("input", &[1, 5, 5, 1]), ("out_backprop", &[1, 5, 5, 1])],
        json!({"filter_sizes": [3, 3, 1, 1], "strides": [1, 1, 1, 1], "padding": "EXPLICIT", "explicit_paddings": [0, 0, 1, 1]}),
    ));
    assert!(matches!(e, ConvError::Length { .. }));
    let (e, m) = message(conv2d(
        &[1, 7, 7, 1],
        &[3, 3, 1, 1],
        json!({"padding": "SAME", "data_format": "NWHC"}),
    ));
    assert!(
        matches!(e, ConvError::UnknownValue { .. }) && m.contains("\"NHWC\", \"NCHW\""),
        "{m}"
    );
}

#[test]
fn kernel_larger_than_padded_input() {
    let (e, m) = message(conv2d(
        &[1, 2, 7, 1],
        &[3, 1, 1, 1],
        json!({"padding": "VALID"}),
    ));
    assert!(
        matches!(e, ConvError::KernelTooLarge { .. }) && m.contains("height") && m.contains("SAME"),
        "{m}"
    );
    // SAME accepts a kernel larger than the input.
    assert_eq!(
        conv2d(&[1, 2, 7, 1], &[5, 1, 1, 1], json!({"padding": "SAME"}))
            .unwrap()
            .shape(),
        vec![1, 2, 7, 1]
    );
}

#[test]
fn unknown_op_and_arguments() {
    let (e, m) = message(call("tf.nn.conv3d", &[], json!({})));
    assert!(
        matches!(e, ConvError::UnknownValue { .. }) && m.contains("tf.nn.conv2d_transpose"),
        "{m}"
    );
    let (e, m) = message(conv2d(
        &[1, 7, 7, 1],
        &[3, 3, 1, 1],
        json!({"padding": "SAME", "stride": 2}),
    ));
    assert!(
        matches!(e, ConvError::Argument { .. }) && m.contains("strides"),
        "{m}"
    );
    let (_, m) = message(conv2d(&[1, 7, 7, 1], &[3, 3, 1, 1], json!({})));
    assert!(m.contains("`padding`") && m.contains("required"), "{m}");
    // Mixed dtypes.
    let mut args = Args::new();
    args.insert(
        "input",
        Arg::Tensor(Tensor::F32(ArrayD::zeros(IxDyn(&[1, 3, 3, 1])))),
    );
    args.insert("filters", tensor(&[1, 1, 1, 1]));
    args.insert("padding", Arg::Json(json!("SAME")));
    assert!(matches!(
        call::run("tf.nn.conv2d", &args),
        Err(ConvError::DType { .. })
    ));
}

#[test]
fn huge_sizes_are_errors() {
    // Legal by the size rule (stride 2^31, kernel 1), but 2^62 elements overflow.
    let (e, m) = message(transpose(
        &[1, 1, 1, 1],
        &[1, 1, 1, 1],
        json!({"output_shape": [1, 2147483648u64, 2147483648u64, 1], "strides": 2147483648u64, "padding": "SAME"}),
    ));
    assert!(matches!(e, ConvError::TooLarge { .. }), "{m}");
    // Fits the address space (2^44 f64 = 128 TiB) but not memory: refused, not aborted.
    let (e, m) = message(transpose(
        &[1, 1, 1, 1],
        &[1, 1, 1, 1],
        json!({"output_shape": [1, 4194304, 4194304, 1], "strides": 4194304, "padding": "SAME"}),
    ));
    assert!(
        matches!(e, ConvError::TooLarge { .. }) && m.contains("cannot allocate"),
        "{m}"
    );
}

#[test]
fn empty_batch_and_zero_output_channels_give_empty_results() {
    assert_eq!(
        conv2d(&[0, 5, 5, 2], &[3, 3, 2, 4], json!({"padding": "SAME"}))
            .unwrap()
            .shape(),
        vec![0, 5, 5, 4]
    );
    assert_eq!(
        conv2d(&[1, 5, 5, 2], &[3, 3, 2, 0], json!({"padding": "SAME"}))
            .unwrap()
            .shape(),
        vec![1, 5, 5, 0]
    );
    assert_eq!(
        conv2d(&[1, 0, 5, 2], &[3, 3, 2, 1], json!({"padding": "SAME"}))
            .unwrap()
            .shape(),
        vec![1, 0, 5, 1]
    );
}

/// A call that is valid before `mutation` (0..=9; 0..=4 leave it valid) breaks one rule.
#[derive(Debug, Clone)]
struct RandomCall {
    op: usize,
    batch: usize,
    hw: [usize; 2],
    cg: usize,
    groups: usize,
    og: usize,
    kernel: [usize; 2],
    strides: [i64; 2],
    dilations: [i64; 2],
    padding: usize,
    pads: [i64; 4],
    nchw: bool,
    mutation: usize,
    noise: i64,
}

fn random_call() -> impl Strategy<Value = RandomCall> {
    (
        (
            0usize..4,
            0usize..3,
            [1usize..9, 1usize..9],
            0usize..3,
            1usize..3,
            0usize..3,
            [1usize..4, 1usize..4],
        ),
        (
            [1i64..4, 1i64..4],
            [1i64..3, 1i64..3],
            0usize..3,
            [0i64..3, 0i64..3, 0i64..3, 0i64..3],
            any::<bool>(),
            0usize..10,
            -3i64..4,
        ),
    )
        .prop_map(
            |(
                (op, batch, hw, cg, groups, og, kernel),
                (strides, dilations, padding, pads, nchw, mutation, noise),
            )| RandomCall {
                op,
                batch,
                hw,
                cg,
                groups,
                og,
                kernel,
                strides,
                dilations,
                padding,
                pads,
                nchw,
                mutation,
                noise,
            },
        )
}

impl RandomCall {
    fn args(&self) -> (&'static str, Args) {
        let op = call::OPS[self.op];
        let fmt = if self.nchw {
            DataFormat::Nchw
        } else {
            DataFormat::Nhwc
        };
        let order = |nhwc: [usize; 4]| -> Vec<usize> {
            let mut out = vec![0; 4];
            for (i, &a) in fmt.axes().iter().enumerate() {
                out[a] = nhwc[i];
            }
            out
        };
        let (m, noise) = (self.mutation, self.noise);
        let bump = |v: usize, which: usize| {
            if m == which {
                (v as i64 + noise).max(0) as usize
            } else {
                v
            }
        };
        let cin = bump(self.cg * self.groups, 5);
        let filter = vec![
            bump(self.kernel[0], 6),
            self.kernel[1],
            self.cg.max(1),
            self.og * self.groups,
        ];
        let x = order([self.batch, self.hw[0], self.hw[1], cin]);
        let mut strides = json!(self.strides);
        let mut dilations = json!(self.dilations);
        if m == 7 {
            strides = json!([self.strides[0] + noise - 3, 1, 1, self.strides[1]]);
        }
        if m == 8 {
            dilations = json!([self.dilations[0] * noise]);
        }
        let p = self.pads;
        let padding = match self.padding {
            0 => json!("SAME"),
            1 => json!("VALID"),
            _ if op.starts_with("tf.raw_ops") => json!("EXPLICIT"),
            _ => json!(order_pairs(
                fmt,
                [
                    [0, 0],
                    [p[0], p[1] - (m == 9) as i64 * 5],
                    [p[2], p[3]],
                    [0, 0]
                ]
            )),
        };
        let mut args = Args::new();
        args.insert("strides", Arg::Json(strides.clone()));
        args.insert("dilations", Arg::Json(dilations.clone()));
        args.insert("padding", Arg::Json(padding.clone()));
        args.insert("data_format", Arg::Json(json!(fmt.name())));
        if padding == json!("EXPLICIT") {
            let flat: Vec<i64> = order_pairs(
                fmt,
                [
                    [0, 0],
                    [p[0], p[1] - (m == 9) as i64 * 5],
                    [p[2], p[3]],
                    [0, 0],
                ],
            )
            .concat();
            args.insert("explicit_paddings", Arg::Json(json!(flat)));
        }
        // The forward output shape the valid call would have, to size dy.
        let mut fwd = args.clone();
        fwd.insert("input_shape", Arg::Json(json!(x)));
        fwd.insert("filters_shape", Arg::Json(json!(filter)));
        let dy_nhwc = call::problem("tf.nn.conv2d", &strip_raw(fwd))
            .map(|(p, _)| p.output_shape())
            .unwrap_or([self.batch, 1, 1, filter[3]]);
        let dy = order([dy_nhwc[0], bump(dy_nhwc[1], 4), dy_nhwc[2], dy_nhwc[3]]);
        let sizes: Vec<i64> = match op {
            "tf.raw_ops.Conv2DBackpropFilter" => filter.iter().map(|&v| v as i64).collect(),
            _ => x.iter().map(|&v| v as i64).collect(),
        };
        match op {
            "tf.nn.conv2d" => {
                args.insert("input", tensor(&x));
                args.insert("filters", tensor(&filter));
            }
            "tf.nn.conv2d_transpose" => {
                args.insert("input", tensor(&dy));
                args.insert("filters", tensor(&filter));
                args.insert("output_shape", Arg::Json(json!(sizes)));
            }
            "tf.raw_ops.Conv2DBackpropInput" => {
                args.insert("filter", tensor(&filter));
                args.insert("out_backprop", tensor(&dy));
                args.insert("input_sizes", Arg::Json(json!(sizes)));
            }
            _ => {
                args.insert("input", tensor(&x));
                args.insert("out_backprop", tensor(&dy));
                args.insert("filter_sizes", Arg::Json(json!(sizes)));
            }
        }
        (op, args)
    }
}

fn order_pairs(fmt: DataFormat, nhwc: [[i64; 2]; 4]) -> Vec<Vec<i64>> {
    let mut out = vec![vec![0, 0]; 4];
    for (i, &a) in fmt.axes().iter().enumerate() {
        out[a] = nhwc[i].to_vec();
    }
    out
}

/// The tf.nn form of raw-op arguments (explicit paddings as pairs), for sizing `dy`.
fn strip_raw(args: Args) -> Args {
    let mut out = Args::new();
    let flat = match args.get("explicit_paddings") {
        Some(Arg::Json(v)) => v.as_array().cloned(),
        _ => None,
    };
    for name in args.names().map(str::to_string).collect::<Vec<_>>() {
        if name == "explicit_paddings" {
            continue;
        }
        let value = args.get(&name).unwrap().clone();
        match &flat {
            Some(flat) if name == "padding" => {
                let pairs: Vec<Value> = flat.chunks(2).map(|c| json!(c)).collect();
                out.insert("padding", Arg::Json(json!(pairs)));
            }
            _ => out.insert(&name, value),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    /// Random, often invalid calls of every TF op: an `Err`, or a result equal to the
    /// reference for the problem the call describes.
    #[test]
    fn random_calls_err_or_match_the_reference(c in random_call()) {
        let (op, args) = c.args();
        let fmt = if c.nchw { DataFormat::Nchw } else { DataFormat::Nhwc };
        let result = call::run(op, &args);
        if c.mutation <= 4 && c.batch > 0 && c.cg > 0 {
            // Unmutated calls are refused only for a kernel larger than the input.
            if let Err(e) = &result {
                prop_assert!(matches!(e, ConvError::KernelTooLarge { .. } | ConvError::IllegalOutputSize { .. } | ConvError::Shape { .. }), "{e}");
            }
        }
        let Ok(Tensor::F64(got)) = result else { return Ok(()) };
        let (p, dir) = call::problem(op, &args).unwrap();
        let view = |name: &str| match args.get(name) {
            Some(Arg::Tensor(Tensor::F64(t))) => t.view().into_dimensionality::<ndarray::Ix4>().unwrap(),
            _ => unreachable!(),
        };
        let expected: Array4<f64> = match dir {
            Direction::Forward => fmt.from_nhwc(reference::forward(&p, fmt.view_as_nhwc(view("input")), view("filters")).unwrap()),
            Direction::BackwardData => {
                let (dy, f) = if op == "tf.nn.conv2d_transpose" { ("input", "filters") } else { ("out_backprop", "filter") };
                fmt.from_nhwc(reference::backward_data(&p, fmt.view_as_nhwc(view(dy)), view(f)).unwrap())
            }
            Direction::BackwardFilter => reference::backward_filter(&p, fmt.view_as_nhwc(view("input")), fmt.view_as_nhwc(view("out_backprop"))).unwrap(),
        };
        prop_assert_eq!(got, expected.into_dyn());
    }
}

//! Translation between frameworks: for random calls of every op, each translation,
//! computed, gives exactly the source call's result.

use convt::bench::Xorshift;
use convt::call::{self, Arg, Args, Tensor};
use convt::translate::{self, canonical, output_layout, Layout};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;
use serde_json::{json, Value};

fn ints(shape: &[usize], seed: u64) -> Arg {
    let mut rng = Xorshift::new(seed);
    Arg::Tensor(Tensor::F64(ArrayD::from_shape_fn(IxDyn(shape), |_| {
        (rng.next_u64() % 9) as f64 - 4.0
    })))
}

/// A random call of one of the eight ops, valid-looking (the source may still refuse).
#[derive(Debug, Clone)]
struct Geometry {
    op: usize,
    batch: usize,
    hw: [usize; 2],
    cg: usize,
    og: usize,
    groups: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pads: [usize; 4],
    extra: [usize; 2],
    mode: usize,
    bias: bool,
    nchw: bool,
    seed: u64,
}

fn geometry() -> impl Strategy<Value = Geometry> {
    (
        (
            0usize..8,
            1usize..3,
            [1usize..7, 1usize..7],
            1usize..3,
            1usize..3,
            1usize..3,
            [1usize..4, 1usize..4],
        ),
        (
            [1usize..4, 1usize..4],
            [1usize..3, 1usize..3],
            [0usize..3, 0usize..3, 0usize..3, 0usize..3],
            [0usize..3, 0usize..3],
            0usize..4,
            any::<bool>(),
            any::<bool>(),
            any::<u64>(),
        ),
    )
        .prop_map(
            |(
                (op, batch, hw, cg, og, groups, kernel),
                (stride, dilation, pads, extra, mode, bias, nchw, seed),
            )| Geometry {
                op,
                batch,
                hw,
                cg,
                og,
                groups,
                kernel,
                stride,
                dilation,
                pads,
                extra,
                mode,
                bias,
                nchw,
                seed,
            },
        )
}

impl Geometry {
    fn call(&self) -> (&'static str, Args) {
        let op = call::OPS[self.op];
        let g = self;
        let (cin, cout) = (g.cg * g.groups, g.og * g.groups);
        let [k0, k1] = g.kernel;
        let mut a = Args::new();
        let mut set = |name: &str, v: Value| a.insert(name, Arg::Json(v));
        let fmt = if g.nchw { "NCHW" } else { "NHWC" };
        let data = |c: usize, h: usize, w: usize| {
            if g.nchw {
                vec![g.batch, c, h, w]
            } else {
                vec![g.batch, h, w, c]
            }
        };
        let tf_padding = |raw: bool| match g.mode {
            0 => (json!("SAME"), None),
            1 => (json!("VALID"), None),
            _ => {
                let pairs = if g.nchw {
                    vec![
                        [0, 0],
                        [0, 0],
                        [g.pads[0], g.pads[1]],
                        [g.pads[2], g.pads[3]],
                    ]
                } else {
                    vec![
                        [0, 0],
                        [g.pads[0], g.pads[1]],
                        [g.pads[2], g.pads[3]],
                        [0, 0],
                    ]
                };
                if raw {
                    (json!("EXPLICIT"), Some(json!(pairs.concat())))
                } else {
                    (json!(pairs), None)
                }
            }
        };
        let mut arrays: Vec<(&str, Vec<usize>)> = vec![];
        match op {
            "tf.nn.conv2d" | "tf.raw_ops.Conv2DBackpropFilter" => {
                let (padding, explicit) = tf_padding(op.contains("raw"));
                set("padding", padding);
                if let Some(e) = explicit {
                    set("explicit_paddings", e);
                }
                set("strides", json!(g.stride));
                set("dilations", json!(g.dilation));
                set("data_format", json!(fmt));
                arrays.push(("input", data(cin, g.hw[0] + 3, g.hw[1] + 3)));
                if op == "tf.nn.conv2d" {
                    arrays.push(("filters", vec![k0, k1, g.cg, cout]));
                } else {
                    // dy of the matching forward problem.
                    let mut fwd = Args::new();
                    for name in ["strides", "dilations", "data_format"] {
                        fwd.insert(
                            name,
                            a_get(&a_clone(&set_args(&g.stride, &g.dilation, fmt)), name),
                        );
                    }
                    let (padding, _) = tf_padding(false);
                    fwd.insert("padding", Arg::Json(padding));
                    fwd.insert(
                        "input_shape",
                        Arg::Json(json!(data(cin, g.hw[0] + 3, g.hw[1] + 3))),
                    );
                    fwd.insert("filters_shape", Arg::Json(json!([k0, k1, g.cg, cout])));
                    let out = call::problem("tf.nn.conv2d", &fwd)
                        .map(|(p, _)| p.output_shape())
                        .unwrap_or([1, 1, 1, 1]);
                    arrays.push(("out_backprop", data(out[3], out[1], out[2])));
                    set("filter_sizes", json!([k0, k1, g.cg, cout]));
                }
            }
            "tf.nn.conv2d_transpose" | "tf.raw_ops.Conv2DBackpropInput" => {
                let (padding, explicit) = tf_padding(op.contains("raw"));
                set("padding", padding);
                if let Some(e) = explicit {
                    set("explicit_paddings", e);
                }
                set("strides", json!(g.stride));
                set("dilations", json!(g.dilation));
                set("data_format", json!(fmt));
                // Pick an output size from the legal ones via the forward rule.
                let full =
                    |a: usize| (g.hw[a] - 1) * g.stride[a] + (g.kernel[a] - 1) * g.dilation[a] + 1;
                let target = |a: usize| match g.mode {
                    0 => (g.hw[a] - 1) * g.stride[a] + 1 + g.extra[a] % g.stride[a],
                    1 => full(a) + g.extra[a] % g.stride[a],
                    _ => (full(a) + g.extra[a] % g.stride[a])
                        .saturating_sub(g.pads[2 * a] + g.pads[2 * a + 1])
                        .max(1),
                };
                let sizes = data(cin, target(0), target(1));
                let (dy, f) = if op == "tf.nn.conv2d_transpose" {
                    ("input", "filters")
                } else {
                    ("out_backprop", "filter")
                };
                arrays.push((dy, data(cout, g.hw[0], g.hw[1])));
                arrays.push((f, vec![k0, k1, g.cg, cout]));
                set(
                    if op == "tf.nn.conv2d_transpose" {
                        "output_shape"
                    } else {
                        "input_sizes"
                    },
                    json!(sizes),
                );
            }
            "torch.nn.functional.conv2d" | "onnx.Conv" => {
                let torch = op.starts_with("torch");
                arrays.push((
                    if torch { "input" } else { "X" },
                    vec![g.batch, cin, g.hw[0] + 3, g.hw[1] + 3],
                ));
                arrays.push((if torch { "weight" } else { "W" }, vec![cout, g.cg, k0, k1]));
                if g.bias {
                    arrays.push((if torch { "bias" } else { "B" }, vec![cout]));
                }
                if torch {
                    set("stride", json!(g.stride));
                    set("dilation", json!(g.dilation));
                    set("groups", json!(g.groups));
                    set(
                        "padding",
                        if g.mode == 0 && g.stride == [1, 1] {
                            json!("same")
                        } else {
                            json!([g.pads[0], g.pads[2]])
                        },
                    );
                } else {
                    set("strides", json!(g.stride));
                    set("group", json!(g.groups));
                    let mode = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"][g.mode];
                    set("auto_pad", json!(mode));
                    if mode == "NOTSET" {
                        set("pads", json!(g.pads));
                        set("dilations", json!(g.dilation));
                    }
                }
            }
            _ => {
                let torch = op.starts_with("torch");
                arrays.push((
                    if torch { "input" } else { "X" },
                    vec![g.batch, cout, g.hw[0], g.hw[1]],
                ));
                arrays.push((if torch { "weight" } else { "W" }, vec![cout, g.cg, k0, k1]));
                if g.bias {
                    arrays.push((if torch { "bias" } else { "B" }, vec![cin]));
                }
                if torch {
                    set("stride", json!(g.stride));
                    set("dilation", json!(g.dilation));
                    set("groups", json!(g.groups));
                    set("padding", json!([g.pads[0], g.pads[2]]));
                    set(
                        "output_padding",
                        json!([
                            g.extra[0] % g.stride[0].max(g.dilation[0]),
                            g.extra[1] % g.stride[1].max(g.dilation[1])
                        ]),
                    );
                } else {
                    set("strides", json!(g.stride));
                    set("dilations", json!(g.dilation));
                    set("group", json!(g.groups));
                    let mode = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"][g.mode];
                    set("auto_pad", json!(mode));
                    set(
                        "output_padding",
                        json!([g.extra[0] % g.stride[0], g.extra[1] % g.stride[1]]),
                    );
                    if mode == "NOTSET" {
                        if g.pads[3] == 2 {
                            set(
                                "output_shape",
                                json!([g.hw[0] * g.stride[0] + g.extra[0], g.hw[1] * g.stride[1]]),
                            );
                        } else {
                            set("pads", json!(g.pads));
                        }
                    }
                }
            }
        }
        for (i, (name, shape)) in arrays.iter().enumerate() {
            a.insert(name, ints(shape, g.seed.wrapping_add(i as u64)));
        }
        (op, a)
    }
}

fn set_args(stride: &[usize; 2], dilation: &[usize; 2], fmt: &str) -> Args {
    let mut a = Args::new();
    a.insert("strides", Arg::Json(json!(stride)));
    a.insert("dilations", Arg::Json(json!(dilation)));
    a.insert("data_format", Arg::Json(json!(fmt)));
    a
}

fn a_clone(a: &Args) -> Args {
    a.clone()
}

fn a_get(a: &Args, name: &str) -> Arg {
    a.get(name).unwrap().clone()
}

fn to_canonical(t: Tensor, layout: Layout) -> ArrayD<f64> {
    let Tensor::F64(a) = t else {
        panic!("f64 expected")
    };
    let perm: Vec<usize> = match layout {
        Layout::Nchw => vec![0, 2, 3, 1],
        _ => vec![0, 1, 2, 3],
    };
    a.permuted_axes(IxDyn(&perm))
        .as_standard_layout()
        .into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn every_translation_computes_the_same_result(g in geometry()) {
        let (op, args) = g.call();
        let Ok(source) = call::run(op, &args) else { return Ok(()) };
        let expected = to_canonical(source, output_layout(op, &args).unwrap());
        let arrays = canonical(op, &args).unwrap();
        let translations = translate::translate(op, &args).unwrap();
        prop_assert!(!translations.is_empty());
        for t in &translations {
            let got = t.run(&arrays).map_err(|e| TestCaseError::fail(format!("{} refused: {e}\n{}", t.op, t.python())))?;
            let Tensor::F64(got) = got else { unreachable!() };
            prop_assert_eq!(&got, &expected, "{} -> {}:\n{}", op, t.op, t.python());
        }
    }
}

/// The recipes of SEMANTICS_DETAIL.md section 9, spelled out.
#[test]
fn tf_same_stride_2_becomes_padding_and_output_padding() {
    let mut args = Args::new();
    for (name, v) in [
        ("input_shape", json!([1, 4, 4, 8])),
        ("filters_shape", json!([4, 4, 3, 8])),
        ("output_shape", json!([1, 8, 8, 3])),
        ("strides", json!(2)),
        ("padding", json!("SAME")),
    ] {
        args.insert(name, Arg::Json(v));
    }
    // k4 s2 SAME 4 -> 8: total padding 2, pads (1, 1): PyTorch padding=1, output_padding=0.
    let t = translate::translate("tf.nn.conv2d_transpose", &args).unwrap();
    let torch = t.iter().find(|t| t.op.starts_with("torch")).unwrap();
    let py = torch.python();
    assert!(
        py.contains(" padding=(1, 1)") && py.contains("output_padding=(0, 0)"),
        "{py}"
    );
    assert!(torch.note.is_none());
    // k3 s2 SAME 4 -> 7: total padding 2... and 4 -> 8 with k2: total 0. With k5, 4 -> 8:
    // total 3, pads (1, 2): the odd pixel after, not expressible: crop recipe.
    args.insert("filters_shape", Arg::Json(json!([5, 5, 3, 8])));
    let t = translate::translate("tf.nn.conv2d_transpose", &args).unwrap();
    let torch = t.iter().find(|t| t.op.starts_with("torch")).unwrap();
    assert!(
        torch.note.as_deref().unwrap().contains("not expressible"),
        "{:?}",
        torch.note
    );
    assert!(
        torch
            .python()
            .contains("torch.nn.functional.pad(y, (-1, -2, -1, -2))"),
        "{}",
        torch.python()
    );
    let onnx = t.iter().find(|t| t.op.starts_with("onnx")).unwrap();
    assert!(
        onnx.note.is_none() && onnx.convt_args().contains("pads=[1,1,2,2]"),
        "{}",
        onnx.convt_args()
    );
}

//! The bodies of the fuzz targets (`fuzz/`), here so that `cargo test` can replay the
//! corpora in `fuzz/corpus/` without libFuzzer. Each function must never panic on any
//! input except where convt would compute a wrong result: every small problem that a
//! builder accepts is computed and compared with the reference loops.

use crate::call::{self, Arg, Args, Tensor};
use serde_json::{json, Value};

/// Largest array (elements) a fuzz case computes with.
pub const SMALL: usize = 4096;

/// For a call whose arrays are `NAME_shape` stand-ins: `problem` gives an `Err` or a valid
/// problem; small problems are computed with random data and must equal the reference.
///
/// Panics if convt's result differs from the reference (that is the bug fuzzing hunts).
pub fn check_against_reference(op: &str, args: &Args) {
    let Ok((p, _)) = call::problem(op, args) else {
        return;
    };
    let sizes = [p.input_shape(), p.output_shape(), p.filter_shape()];
    if sizes.iter().any(|s| s.iter().product::<usize>() > SMALL) {
        return;
    }
    // The reference loops walk every tap even when a channel count is 0 (no elements):
    // bound their iterations too (found by fuzzing: a 2^26-tap kernel on zero channels).
    let taps = p.height.kernel.saturating_mul(p.width.kernel);
    let pixels = p
        .batch
        .saturating_mul(p.height.output)
        .saturating_mul(p.width.output);
    let work = (p.output_shape().iter().product::<usize>()
        + p.input_shape().iter().product::<usize>())
    .saturating_mul(taps)
    .saturating_add(taps.saturating_mul(pixels));
    if work > 1 << 24 {
        return;
    }
    let Ok(full) = crate::bench::materialise(op, args, true) else {
        return;
    };
    let got = call::run(op, &full).expect("a valid problem computes");
    let layout = crate::translate::output_layout(op, &full).expect("known op");
    let Tensor::F64(got) = got else {
        panic!("f64 in, f64 out")
    };
    let perm: &[usize] = if layout == crate::translate::Layout::Nchw {
        &[0, 2, 3, 1]
    } else {
        &[0, 1, 2, 3]
    };
    let got = got.permuted_axes(ndarray::IxDyn(perm));
    let expected =
        crate::reference::call(op, &full).expect("the reference computes what run computes");
    assert_eq!(got.shape(), expected.shape());
    for (a, b) in got.iter().zip(expected.iter()) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{op}: {a} vs {b}");
    }
}

/// Arbitrary text as `NAME=VALUE` lines through the command-line grammar, then every op's
/// problem builder, explanation and translation.
pub fn cli_grammar(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Values ending in .npy would read files: keep the fuzzer away from the file system.
    let items: Vec<String> = text
        .split('\n')
        .filter(|s| !s.ends_with(".npy"))
        .map(String::from)
        .collect();
    let Ok(args) = Args::parse_cli(&items) else {
        return;
    };
    for op in call::OPS {
        check_against_reference(op, &args);
        let _ = crate::explain::explain(op, &args).map(|e| e.text());
        let _ = crate::translate::translate(op, &args);
    }
}

/// Arbitrary bytes as a `.npy` file: a tensor or a clear error.
pub fn npy_reader(data: &[u8]) {
    if let Ok(t) = Tensor::from_npy_bytes(data, "fuzz.npy") {
        let _ = t.shape();
    }
}

fn take(data: &mut &[u8]) -> i64 {
    let Some((&b, rest)) = data.split_first() else {
        return 1;
    };
    *data = rest;
    match b {
        // Mostly small values, sometimes zero, negative or huge.
        0..=199 => (b % 7) as i64,
        200..=219 => -((b % 3) as i64) - 1,
        220..=239 => 1i64 << (b - 200),
        _ => i64::MAX - (b as i64),
    }
}

fn list(data: &mut &[u8], n: usize) -> Value {
    json!((0..n).map(|_| take(data)).collect::<Vec<_>>())
}

/// Arbitrary numbers (shapes, strides, paddings, dilations, groups, output sizes,
/// including huge and negative ones) through every front's problem builder: an `Err`, or
/// on small sizes a result equal to the reference.
pub fn problem_builders(bytes: &[u8]) {
    let mut data = bytes;
    let d = &mut data;
    let op = call::OPS[(take(d).unsigned_abs() as usize) % call::OPS.len()];
    let mut args = Args::new();
    let mut set = |name: &str, v: Value| args.insert(name, Arg::Json(v));
    let arrays = call::array_names(op).unwrap_or(&[]);
    for name in arrays.iter().filter(|n| !matches!(**n, "bias" | "B")) {
        set(&format!("{name}_shape"), list(d, 4));
    }
    match op {
        o if o.starts_with("tf.") => {
            set("strides", list(d, 2));
            set("dilations", list(d, 2));
            let mode = take(d);
            match mode {
                0 | 1 => set("padding", json!(if mode == 0 { "SAME" } else { "VALID" })),
                _ if o.starts_with("tf.raw_ops") => {
                    set("padding", json!("EXPLICIT"));
                    let p = [take(d), take(d), take(d), take(d)];
                    set(
                        "explicit_paddings",
                        json!([0, 0, p[0], p[1], p[2], p[3], 0, 0]),
                    );
                }
                _ => {
                    let p = [take(d), take(d), take(d), take(d)];
                    set(
                        "padding",
                        json!([[0, 0], [p[0], p[1]], [p[2], p[3]], [0, 0]]),
                    );
                }
            }
            if take(d) % 2 == 1 {
                set("data_format", json!("NCHW"));
            }
            match o {
                "tf.nn.conv2d_transpose" => set("output_shape", list(d, 4)),
                "tf.raw_ops.Conv2DBackpropInput" => set("input_sizes", list(d, 4)),
                "tf.raw_ops.Conv2DBackpropFilter" => set("filter_sizes", list(d, 4)),
                _ => {}
            }
        }
        o if o.starts_with("torch.") => {
            set("stride", list(d, 2));
            set("dilation", list(d, 2));
            set("groups", json!(take(d)));
            set("padding", list(d, 2));
            if o.ends_with("transpose2d") {
                set("output_padding", list(d, 2));
            }
        }
        _ => {
            set("strides", list(d, 2));
            set("dilations", list(d, 2));
            set("group", json!(take(d)));
            let modes = ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"];
            set(
                "auto_pad",
                json!(modes[(take(d).unsigned_abs() as usize) % 4]),
            );
            if take(d) % 2 == 0 {
                set("pads", list(d, 4));
            }
            if op == "onnx.ConvTranspose" {
                set("output_padding", list(d, 2));
                if take(d) % 3 == 0 {
                    set("output_shape", list(d, 2));
                }
            }
        }
    }
    check_against_reference(op, &args);
}

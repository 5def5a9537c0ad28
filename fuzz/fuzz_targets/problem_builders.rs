//! Every front's problem builder over arbitrary numbers (shapes, strides, paddings,
//! dilations, groups, output sizes, including huge and negative ones): an `Err`, or on
//! small sizes a result equal to the reference.
#![no_main]
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
#[path = "common.rs"]
mod common;

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

fuzz_target!(|bytes: &[u8]| {
    let mut data = bytes;
    let d = &mut data;
    let op = convt::call::OPS[(take(d).unsigned_abs() as usize) % convt::call::OPS.len()];
    let mut args = convt::call::Args::new();
    let mut set = |name: &str, v: Value| args.insert(name, convt::call::Arg::Json(v));
    let arrays = convt::call::array_names(op).unwrap();
    for name in arrays.iter().filter(|n| !matches!(**n, "bias" | "B")) {
        let rank = 4;
        set(&format!("{name}_shape"), list(d, rank));
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
    common::check(op, &args);
});

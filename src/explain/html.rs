//! The interactive HTML page: one self-contained file (no network), where a reader
//! steps through the input cells of a transposed convolution and sees where each stamps
//! the kernel, and changes input size, kernel, stride, dilation, padding and output size.
//!
//! The page holds no size rule of its own: convt computes, per axis and for a grid of
//! parameters (plus the reader's own call), the legal output sizes, the padding, the
//! zero-stuffed positions and the scatter map (from the reference loops), and embeds them
//! as JSON. The script only draws them and combines the two independent axes.

use super::{matrix_of, Explanation};
use crate::error::Result;
use crate::identities::equivalent_conv_padding;
use crate::problem::{legal_transposed_sizes, Axis, AxisPadding, Direction, Problem, Taps};
use serde_json::{json, Map, Value};

/// Input sizes, kernels, strides and dilations the page offers.
const INPUTS: std::ops::RangeInclusive<usize> = 1..=5;
const KERNELS: std::ops::RangeInclusive<usize> = 1..=4;
const STRIDES: std::ops::RangeInclusive<usize> = 1..=3;
const DILATIONS: std::ops::RangeInclusive<usize> = 1..=2;

/// The padding choices the page offers, by name.
fn paddings() -> Vec<(String, AxisPadding)> {
    let mut all = vec![
        ("VALID".to_string(), AxisPadding::Valid),
        ("SAME".to_string(), AxisPadding::SameUpper),
    ];
    for before in 0..=2 {
        for after in 0..=2 {
            if before + after > 0 {
                all.push((
                    format!("{before},{after}"),
                    AxisPadding::Explicit { before, after },
                ));
            }
        }
    }
    all
}

/// One axis of one transposed convolution: padding, zero-stuffed positions and the
/// scatter map `map[i][t]` (output position of input `i` through tap `t`, or -1).
fn window(axis: Axis) -> Result<Value> {
    let unit = Axis::forward("height", 1, Taps::new(1, 1, 1), AxisPadding::Valid)?;
    let p = Problem::new(1, 1, 1, 1, unit, axis)?;
    let m = matrix_of(&p)?;
    let mut map = vec![vec![-1i64; axis.kernel]; axis.output];
    for (i, row) in m.taps.iter().enumerate() {
        for (o, tap) in row.iter().enumerate() {
            if let Some((_, t)) = tap {
                map[i][*t] = o as i64;
            }
        }
    }
    let pads = equivalent_conv_padding(&p)[1];
    let stuffed = if axis.output == 0 {
        0
    } else {
        (axis.output - 1) * axis.stride + 1
    };
    Ok(json!({
        "pb": axis.pad_before,
        "pa": axis.pad_after,
        "stuffed_len": (stuffed as i64 + pads[0] + pads[1]).max(0),
        "stuffed_pos": (0..axis.output).map(|i| pads[0] + (i * axis.stride) as i64).collect::<Vec<_>>(),
        "map": map,
    }))
}

/// The legal output sizes of one axis and the window of each.
fn axis_data(small: usize, taps: Taps, padding: AxisPadding) -> Result<Option<Value>> {
    let Some(legal) = legal_transposed_sizes(small, taps, padding)? else {
        return Ok(None);
    };
    let mut windows = Map::new();
    for ot in legal.clone().take(8) {
        let axis = Axis::transposed("output_shape", "width", ot, small, taps, padding)?;
        windows.insert(ot.to_string(), window(axis)?);
    }
    Ok(Some(
        json!({ "legal": legal.take(8).collect::<Vec<_>>(), "windows": windows }),
    ))
}

fn key(small: usize, taps: Taps, padding: &str) -> String {
    format!(
        "{small}|{}|{}|{}|{padding}",
        taps.kernel, taps.stride, taps.dilation
    )
}

fn plane(a: Option<ndarray::Array2<f64>>) -> Value {
    match a {
        Some(a) => json!(a.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>()),
        None => Value::Null,
    }
}

/// The page's data: the grid of parameters and the reader's call.
pub fn data(e: &Explanation) -> Result<Value> {
    if !e.small() {
        return Err(crate::ConvError::TooLarge {
            arg: "--html".into(),
            message: format!(
                "the page is drawn for up to {} cells per channel",
                super::MAX_VIEW_CELLS
            ),
        });
    }
    let mut axes = Map::new();
    for small in INPUTS {
        for k in KERNELS {
            for s in STRIDES {
                for d in DILATIONS {
                    for (name, padding) in paddings() {
                        let taps = Taps::new(k, s, d);
                        if let Some(v) = axis_data(small, taps, padding)? {
                            axes.insert(key(small, taps, &name), v);
                        }
                    }
                }
            }
        }
    }
    // The reader's own axes, exactly as the call resolved them.
    let mut initial = Map::new();
    for (name, axis, padding) in [
        ("h", e.problem.height, e.padding[0]),
        ("w", e.problem.width, e.padding[1]),
    ] {
        let taps = Taps::new(axis.kernel, axis.stride, axis.dilation);
        let mut entry = axis_data(axis.output, taps, padding)?
            .unwrap_or_else(|| json!({ "legal": [], "windows": {} }));
        entry["windows"][axis.input.to_string()] = window(axis)?;
        if let Some(legal) = entry["legal"].as_array_mut() {
            if !legal.contains(&json!(axis.input)) {
                legal.push(json!(axis.input));
            }
        }
        let k = format!("call-{name}");
        axes.insert(k.clone(), entry);
        let pad_name = match padding {
            AxisPadding::Valid => "VALID".to_string(),
            AxisPadding::SameUpper => "SAME".to_string(),
            AxisPadding::SameLower => "SAME_LOWER".to_string(),
            AxisPadding::Explicit { before, after } => format!("{before},{after}"),
        };
        initial.insert(
            name.into(),
            json!({ "key": k, "output": axis.input, "small": axis.output, "kernel": axis.kernel, "stride": axis.stride, "dilation": axis.dilation, "padding": pad_name }),
        );
    }
    let values = e.direction == Direction::BackwardData;
    initial.insert(
        "input".into(),
        if values {
            plane(e.data_plane())
        } else {
            Value::Null
        },
    );
    initial.insert("kernel".into(), plane(e.filter_plane()));
    initial.insert(
        "output".into(),
        if values {
            plane(
                e.result
                    .as_ref()
                    .map(|y| y.slice(ndarray::s![0, .., .., 0]).to_owned()),
            )
        } else {
            Value::Null
        },
    );
    initial.insert("call".into(), json!(e.op));
    Ok(json!({
        "axes": axes,
        "initial": initial,
        "options": {
            "input": INPUTS.collect::<Vec<_>>(),
            "kernel": KERNELS.collect::<Vec<_>>(),
            "stride": STRIDES.collect::<Vec<_>>(),
            "dilation": DILATIONS.collect::<Vec<_>>(),
            "padding": paddings().into_iter().map(|p| p.0).collect::<Vec<_>>(),
        },
    }))
}

/// The self-contained page.
pub fn page(e: &Explanation) -> Result<String> {
    let data = data(e)?.to_string().replace("</", "<\\/");
    let text = e
        .text()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Ok(include_str!("page.html")
        .replace("/*DATA*/null", &data)
        .replace("<!--TEXT-->", &text))
}

//! The same call in another framework.
//!
//! Every call describes a [`Problem`] and a direction; per axis, a transposed call is the
//! window `[pad_before, pad_before + output)` of the full scatter (`SEMANTICS_DETAIL.md`
//! sections 3.1 and 9). Each framework expresses some windows directly:
//!
//! - TensorFlow: explicit padding with `output_shape` (trailing rows up to `stride - 1`);
//!   no bias argument (add it after with `tf.nn.bias_add`);
//! - PyTorch: symmetric `padding` plus `output_padding` at the end (`< max(stride,
//!   dilation)`); forward padding is symmetric only;
//! - ONNX: `pads` begin/end plus `output_padding` (`< stride`).
//!
//! When the window is not expressible (e.g. TF SAME with an odd total padding in
//! PyTorch), the translation says so and gives the workaround: pad the input first, or
//! compute the full result and crop / pad it (`F.pad` with negative amounts crops).
//!
//! ```
//! use convt::call::{Arg, Args};
//! use convt::translate::translate;
//! use serde_json::json;
//! let mut args = Args::new();
//! for (name, v) in [("input_shape", json!([1, 4, 4, 8])), ("filters_shape", json!([4, 4, 4, 8])),
//!                   ("output_shape", json!([1, 8, 8, 4])), ("strides", json!(2)), ("padding", json!("SAME"))] {
//!     args.insert(name, Arg::Json(v));
//! }
//! let t = translate("tf.nn.conv2d_transpose", &args).unwrap();
//! let torch = t.iter().find(|t| t.op.starts_with("torch")).unwrap();
//! // TF SAME, k4 s2, 4 -> 8: total padding 2, pads (1, 1): PyTorch padding=1,
//! // output_padding=0.
//! let py = torch.python();
//! assert!(py.contains(" padding=(1, 1)") && py.contains("output_padding=(0, 0)"));
//! ```

use crate::call::{self, Arg, Args, Tensor};
use crate::error::{ConvError, Result};
use crate::problem::{full_length, Axis, AxisPadding, Direction, Problem, Taps};
use ndarray::{ArrayD, IxDyn, Slice};
use serde_json::{json, Value};

/// What an array argument holds, independent of framework.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The data input: `x` for a forward call, `dy` for a transposed call.
    Data,
    /// The filter.
    Filter,
    /// The bias.
    Bias,
    /// `dy` of a filter-gradient call.
    Grad,
}

/// Memory layout of an array argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Data `[N, H, W, C]`.
    Nhwc,
    /// Data `[N, C, H, W]`.
    Nchw,
    /// Filter `[kh, kw, in / groups, out]` (TF; also TF's transposed filter).
    Hwio,
    /// Filter `[out, in / groups, kh, kw]` (PyTorch/ONNX forward weight, and their
    /// transposed weight, which is the same array).
    Oihw,
    /// A vector.
    Vector,
}

impl Layout {
    /// Axis permutation from the canonical layout (NHWC data, HWIO filter) to this one.
    fn permutation_from_canonical(self) -> Vec<usize> {
        match self {
            Layout::Nhwc | Layout::Hwio => vec![0, 1, 2, 3],
            Layout::Nchw => vec![0, 3, 1, 2],
            Layout::Oihw => vec![3, 2, 0, 1],
            Layout::Vector => vec![0],
        }
    }

    /// Axis permutation from this layout to the canonical one.
    fn permutation_to_canonical(self) -> Vec<usize> {
        match self {
            Layout::Nhwc | Layout::Hwio => vec![0, 1, 2, 3],
            Layout::Nchw => vec![0, 2, 3, 1],
            Layout::Oihw => vec![2, 3, 1, 0],
            Layout::Vector => vec![0],
        }
    }

    /// Where height and width are.
    fn spatial(self) -> [usize; 2] {
        match self {
            Layout::Nchw => [2, 3],
            _ => [1, 2],
        }
    }
}

/// One array argument of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The framework's argument name.
    pub name: &'static str,
    /// What it holds.
    pub role: Role,
    /// Its layout.
    pub layout: Layout,
}

/// A call in one framework equivalent to a given call.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    /// The op, as `convt run` names it.
    pub op: &'static str,
    /// Its value arguments.
    pub args: Args,
    /// Its array arguments.
    pub inputs: Vec<Input>,
    /// Layout of its result.
    pub output_layout: Layout,
    /// Zero padding `[[top, bottom], [left, right]]` applied to the data input first.
    pub pre_pad: Option<[[usize; 2]; 2]>,
    /// Padding (positive) or cropping (negative) `[[top, bottom], [left, right]]` applied
    /// to the result.
    pub post_window: Option<[[i64; 2]; 2]>,
    /// The bias is added after the call (the op has no bias argument, or the result is
    /// windowed first).
    pub bias_after: bool,
    /// Why this is more than a single call, when it is.
    pub note: Option<String>,
}

/// The arrays of a call in canonical layouts: data NHWC, filter HWIO.
#[derive(Debug, Clone, PartialEq)]
pub struct Canonical {
    /// Data input (`x`, or `dy` of a transposed call).
    pub data: Tensor,
    /// Filter (HWIO), absent for a filter-gradient call.
    pub filter: Option<Tensor>,
    /// `dy` of a filter-gradient call.
    pub grad: Option<Tensor>,
    /// Bias.
    pub bias: Option<Tensor>,
}

/// The array arguments of `op`.
pub fn inputs(op: &str, args: &Args) -> Result<Vec<Input>> {
    let fmt = match args.get("data_format") {
        Some(Arg::Json(Value::String(s))) if s == "NCHW" => Layout::Nchw,
        _ => Layout::Nhwc,
    };
    let i = |name, role, layout| Input { name, role, layout };
    Ok(match op {
        "tf.nn.conv2d" => vec![
            i("input", Role::Data, fmt),
            i("filters", Role::Filter, Layout::Hwio),
        ],
        "tf.nn.conv2d_transpose" => vec![
            i("input", Role::Data, fmt),
            i("filters", Role::Filter, Layout::Hwio),
        ],
        "tf.raw_ops.Conv2DBackpropInput" => vec![
            i("out_backprop", Role::Data, fmt),
            i("filter", Role::Filter, Layout::Hwio),
        ],
        "tf.raw_ops.Conv2DBackpropFilter" => vec![
            i("input", Role::Data, fmt),
            i("out_backprop", Role::Grad, fmt),
        ],
        "torch.nn.functional.conv2d" | "torch.nn.functional.conv_transpose2d" => vec![
            i("input", Role::Data, Layout::Nchw),
            i("weight", Role::Filter, Layout::Oihw),
            i("bias", Role::Bias, Layout::Vector),
        ],
        "onnx.Conv" | "onnx.ConvTranspose" => vec![
            i("X", Role::Data, Layout::Nchw),
            i("W", Role::Filter, Layout::Oihw),
            i("B", Role::Bias, Layout::Vector),
        ],
        _ => {
            return Err(ConvError::UnknownValue {
                arg: "op".into(),
                got: op.into(),
                legal: call::OPS.join(", "),
            })
        }
    })
}

fn permute(t: &Tensor, perm: &[usize]) -> Tensor {
    match t {
        Tensor::F32(a) => Tensor::F32(
            a.view()
                .permuted_axes(IxDyn(perm))
                .as_standard_layout()
                .into_owned(),
        ),
        Tensor::F64(a) => Tensor::F64(
            a.view()
                .permuted_axes(IxDyn(perm))
                .as_standard_layout()
                .into_owned(),
        ),
    }
}

fn window_axes<T: Clone + num_traits::Zero>(
    a: &ArrayD<T>,
    axes: [usize; 2],
    pads: [[i64; 2]; 2],
) -> Result<ArrayD<T>> {
    let mut shape = a.shape().to_vec();
    for (k, &ax) in axes.iter().enumerate() {
        let len = shape[ax] as i64 + pads[k][0] + pads[k][1];
        shape[ax] = usize::try_from(len).map_err(|_| ConvError::Shape {
            arg: "window".into(),
            message: format!(
                "cropping {:?} removes more than the axis' {} elements",
                pads[k], shape[ax]
            ),
        })?;
    }
    let mut out = ArrayD::zeros(IxDyn(&shape));
    let mut src = a.view();
    let mut dst = out.view_mut();
    for (k, &ax) in axes.iter().enumerate() {
        let [before, _] = pads[k];
        let from = ((-before).max(0) as usize).min(a.shape()[ax]);
        let to = before.max(0) as usize;
        let len = (a.shape()[ax].saturating_sub(from)).min(shape[ax].saturating_sub(to));
        src.slice_axis_inplace(ndarray::Axis(ax), Slice::from(from..from + len));
        dst.slice_axis_inplace(ndarray::Axis(ax), Slice::from(to..to + len));
    }
    dst.assign(&src);
    Ok(out)
}

fn window(t: &Tensor, axes: [usize; 2], pads: [[i64; 2]; 2]) -> Result<Tensor> {
    Ok(match t {
        Tensor::F32(a) => Tensor::F32(window_axes(a, axes, pads)?),
        Tensor::F64(a) => Tensor::F64(window_axes(a, axes, pads)?),
    })
}

fn add_bias(t: &Tensor, channel_axis: usize, bias: &Tensor) -> Result<Tensor> {
    let mismatch = || ConvError::DType {
        arg: "bias".into(),
        got: bias.dtype().into(),
        legal: t.dtype().into(),
    };
    Ok(match (t, bias) {
        (Tensor::F32(a), Tensor::F32(b)) => {
            let mut a = a.clone();
            for mut lane in a.lanes_mut(ndarray::Axis(channel_axis)) {
                lane += b;
            }
            Tensor::F32(a)
        }
        (Tensor::F64(a), Tensor::F64(b)) => {
            let mut a = a.clone();
            for mut lane in a.lanes_mut(ndarray::Axis(channel_axis)) {
                lane += b;
            }
            Tensor::F64(a)
        }
        _ => return Err(mismatch()),
    })
}

/// Layout of the result of `op`.
pub fn output_layout(op: &str, args: &Args) -> Result<Layout> {
    Ok(match op {
        "tf.raw_ops.Conv2DBackpropFilter" => Layout::Hwio,
        _ => inputs(op, args)?[0].layout,
    })
}

/// The arrays of a call, converted to canonical layouts.
pub fn canonical(op: &str, args: &Args) -> Result<Canonical> {
    let mut out = Canonical {
        data: Tensor::F32(ArrayD::zeros(IxDyn(&[0]))),
        filter: None,
        grad: None,
        bias: None,
    };
    let mut have_data = false;
    for input in inputs(op, args)? {
        let Some(Arg::Tensor(t)) = args.get(input.name) else {
            continue;
        };
        let t = permute(t, &input.layout.permutation_to_canonical());
        match input.role {
            Role::Data => {
                out.data = t;
                have_data = true;
            }
            Role::Filter => out.filter = Some(t),
            Role::Bias => out.bias = Some(t),
            Role::Grad => out.grad = Some(t),
        }
    }
    if !have_data {
        return Err(ConvError::Argument {
            arg: "input".into(),
            message: "is required (an array)".into(),
        });
    }
    Ok(out)
}

impl Translation {
    /// A single call of `op` with no value arguments yet and nothing around it.
    fn single_call(op: &'static str, output_layout: Layout) -> Result<Translation> {
        Ok(Translation {
            op,
            args: Args::new(),
            inputs: inputs(op, &Args::new())?,
            output_layout,
            pre_pad: None,
            post_window: None,
            bias_after: false,
            note: None,
        })
    }

    /// TensorFlow's ops take no bias: with one, add it after (`tf.nn.bias_add`).
    fn with_tf_bias(mut self, has_bias: bool) -> Translation {
        if has_bias {
            self.bias_after = true;
            self.note = Some(format!(
                "{} has no bias argument: add it with tf.nn.bias_add",
                self.op
            ));
        }
        self
    }

    /// Runs this translation on canonical arrays; the result is in canonical layout
    /// (NHWC, or HWIO for a filter gradient).
    pub fn run(&self, arrays: &Canonical) -> Result<Tensor> {
        let mut args = self.args.clone();
        for input in &self.inputs {
            let source = match input.role {
                Role::Data => Some(&arrays.data),
                Role::Filter => arrays.filter.as_ref(),
                Role::Grad => arrays.grad.as_ref(),
                Role::Bias if self.bias_after => None,
                Role::Bias => arrays.bias.as_ref(),
            };
            let Some(source) = source else { continue };
            let mut t = permute(source, &input.layout.permutation_from_canonical());
            if input.role == Role::Data {
                if let Some(p) = self.pre_pad {
                    t = window(&t, input.layout.spatial(), p.map(|a| a.map(|v| v as i64)))?;
                }
            }
            args.insert(input.name, Arg::Tensor(t));
        }
        let mut y = call::run(self.op, &args)?;
        if let Some(p) = self.post_window {
            y = window(&y, self.output_layout.spatial(), p)?;
        }
        if let (true, Some(b)) = (self.bias_after, &arrays.bias) {
            let channel_axis = if self.output_layout == Layout::Nchw {
                1
            } else {
                3
            };
            y = add_bias(&y, channel_axis, b)?;
        }
        Ok(permute(&y, &self.output_layout.permutation_to_canonical()))
    }

    /// The call as Python source, with the steps around it.
    pub fn python(&self) -> String {
        let mut lines = vec![];
        let framework = self.op.split('.').next().unwrap_or("");
        for input in &self.inputs {
            if input.role == Role::Bias && self.bias_after {
                continue;
            }
            let perm = input.layout.permutation_from_canonical();
            let how = match (framework, input.layout) {
                (_, Layout::Nhwc) | (_, Layout::Hwio) | (_, Layout::Vector) => continue,
                ("torch", _) => format!("{}.permute{}", input.name, tuple(&perm)),
                _ => format!("np.transpose({}, {:?})", input.name, perm),
            };
            lines.push(format!(
                "# {} from NHWC / HWIO arrays: {} = {how}",
                input.name, input.name
            ));
        }
        let data = self
            .inputs
            .iter()
            .find(|i| i.role == Role::Data)
            .map(|i| i.name)
            .unwrap_or("input");
        if let Some([[t, b], [l, r]]) = self.pre_pad {
            lines.push(match framework {
                "torch" => {
                    format!("{data} = torch.nn.functional.pad({data}, ({l}, {r}, {t}, {b}))")
                }
                "tf" => {
                    format!("{data} = tf.pad({data}, [[0, 0], [{t}, {b}], [{l}, {r}], [0, 0]])")
                }
                _ => format!(
                    "# pad {data}: top {t}, bottom {b}, left {l}, right {r} (an ONNX Pad node)"
                ),
            });
        }
        let mut call_args: Vec<String> = self
            .inputs
            .iter()
            .filter(|i| !(i.role == Role::Bias && self.bias_after))
            .map(|i| i.name.to_string())
            .collect();
        for name in self.args.names() {
            if let Some(Arg::Json(v)) = self.args.get(name) {
                let v = match (framework, v) {
                    ("torch", Value::Array(items)) => tuple(items),
                    (_, Value::String(s)) => format!("'{s}'"),
                    _ => v.to_string(),
                };
                call_args.push(format!("{name}={v}"));
            }
        }
        if framework == "onnx" {
            let (arrays, attrs) = call_args.split_at(
                self.inputs
                    .iter()
                    .filter(|i| !(i.role == Role::Bias && self.bias_after))
                    .count(),
            );
            let names: Vec<String> = arrays.iter().map(|a| format!("'{a}'")).collect();
            let op = self.op.trim_start_matches("onnx.");
            lines.push(format!(
                "node = onnx.helper.make_node('{op}', [{}], ['Y'], {})",
                names.join(", "),
                attrs.join(", ")
            ));
        } else {
            lines.push(format!("y = {}({})", self.op, call_args.join(", ")));
        }
        if let Some([[t, b], [l, r]]) = self.post_window {
            lines.push(match framework {
                "torch" => format!(
                    "y = torch.nn.functional.pad(y, ({l}, {r}, {t}, {b}))  # negative amounts crop"
                ),
                _ => {
                    format!("# then pad (+) / crop (-) y: top {t}, bottom {b}, left {l}, right {r}")
                }
            });
        }
        if self.bias_after {
            lines.push(match framework {
                "tf" => "y = tf.nn.bias_add(y, bias)".to_string(),
                "torch" => "y = y + bias[:, None, None]".to_string(),
                _ => "# then add B per output channel".to_string(),
            });
        }
        lines.join("\n")
    }

    /// The call in `convt run` grammar (arrays by argument name).
    pub fn convt_args(&self) -> String {
        let mut parts = vec![self.op.to_string()];
        for input in &self.inputs {
            if !(input.role == Role::Bias && self.bias_after) {
                parts.push(format!("{}={}.npy", input.name, input.name));
            }
        }
        for name in self.args.names() {
            if let Some(Arg::Json(v)) = self.args.get(name) {
                parts.push(format!("{name}={}", v.to_string().replace(' ', "")));
            }
        }
        parts.join(" ")
    }
}

fn tuple<T: std::fmt::Display>(items: &[T]) -> String {
    let inner: Vec<String> = items.iter().map(|v| v.to_string()).collect();
    format!("({})", inner.join(", "))
}

/// Per axis: `(pad_before, window end pad)` where the end pad is `full - pad_before -
/// output` (negative: zeros appended past the full scatter).
fn transposed_window(a: &Axis) -> Result<(i64, i64, i64)> {
    let full = full_length(a.output, a.stride, a.effective_kernel())? as i64;
    let pb = a.pad_before as i64;
    Ok((pb, full - pb - a.input as i64, full))
}

fn vals(pairs: &[(&str, Value)]) -> Args {
    let mut args = Args::new();
    for (name, v) in pairs {
        args.insert(name, Arg::Json(v.clone()));
    }
    args
}

fn tf_forward(p: &Problem, has_bias: bool) -> Result<Translation> {
    let [h, w] = p.axes();
    let same = [h, w].iter().all(|a| {
        Axis::forward(
            "",
            a.input,
            Taps::new(a.kernel, a.stride, a.dilation),
            AxisPadding::SameUpper,
        )
        .is_ok_and(|s| s.pad_before == a.pad_before && s.pad_after == a.pad_after)
    });
    let valid = [h, w].iter().all(|a| a.pad_before == 0 && a.pad_after == 0);
    let padding = if same {
        json!("SAME")
    } else if valid {
        json!("VALID")
    } else {
        json!([
            [0, 0],
            [h.pad_before, h.pad_after],
            [w.pad_before, w.pad_after],
            [0, 0]
        ])
    };
    let mut t = Translation::single_call("tf.nn.conv2d", Layout::Nhwc)?.with_tf_bias(has_bias);
    t.args = vals(&[
        ("strides", json!([h.stride, w.stride])),
        ("padding", padding),
        ("dilations", json!([h.dilation, w.dilation])),
    ]);
    Ok(t)
}

fn torch_or_onnx_forward(p: &Problem, onnx: bool) -> Result<Translation> {
    let [h, w] = p.axes();
    // PyTorch pads symmetrically; asymmetric padding still works when the extra rows at
    // the end are never read (the forward stride skips them).
    let symmetric = |a: &Axis| {
        Axis::forward(
            "",
            a.input,
            Taps::new(a.kernel, a.stride, a.dilation),
            AxisPadding::Explicit {
                before: a.pad_before,
                after: a.pad_before,
            },
        )
        .is_ok_and(|s| s.output == a.output)
    };
    let op = if onnx {
        "onnx.Conv"
    } else {
        "torch.nn.functional.conv2d"
    };
    let mut t = Translation::single_call(op, Layout::Nchw)?;
    if onnx {
        t.args = vals(&[
            (
                "pads",
                json!([
                    h.pad_before,
                    w.pad_before,
                    h.pad_after.max(0),
                    w.pad_after.max(0)
                ]),
            ),
            ("strides", json!([h.stride, w.stride])),
            ("dilations", json!([h.dilation, w.dilation])),
            ("group", json!(p.groups)),
        ]);
    } else if symmetric(&h) && symmetric(&w) {
        t.args = vals(&[
            ("stride", json!([h.stride, w.stride])),
            ("padding", json!([h.pad_before, w.pad_before])),
            ("dilation", json!([h.dilation, w.dilation])),
            ("groups", json!(p.groups)),
        ]);
    } else {
        t.args = vals(&[
            ("stride", json!([h.stride, w.stride])),
            ("padding", json!([0, 0])),
            ("dilation", json!([h.dilation, w.dilation])),
            ("groups", json!(p.groups)),
        ]);
        t.pre_pad = Some([
            [h.pad_before, h.pad_after.max(0) as usize],
            [w.pad_before, w.pad_after.max(0) as usize],
        ]);
        t.note = Some(format!(
            "asymmetric padding (height {:?}, width {:?}) is not expressible with PyTorch's symmetric padding: pad the input first",
            (h.pad_before, h.pad_after),
            (w.pad_before, w.pad_after)
        ));
    }
    Ok(t)
}

fn tf_transposed(p: &Problem, has_bias: bool) -> Result<Translation> {
    let [h, w] = p.axes();
    let (hb, he, hf) = transposed_window(&h)?;
    let (wb, we, wf) = transposed_window(&w)?;
    // TF accepts output sizes up to stride - 1 past the explicit window.
    let fits = |end: i64, a: &Axis| end >= 0 || -end < a.stride as i64;
    let mut t =
        Translation::single_call("tf.nn.conv2d_transpose", Layout::Nhwc)?.with_tf_bias(has_bias);
    let (out_h, out_w, pads) = if fits(he, &h) && fits(we, &w) {
        (
            h.input as i64,
            w.input as i64,
            [[hb, he.max(0)], [wb, we.max(0)]],
        )
    } else {
        // Compute the full scatter and window it afterwards.
        t.post_window = Some([[-hb, -he], [-wb, -we]]);
        t.note = Some(format!(
            "the window (start {:?}, size {:?}) reaches more than stride - 1 past the full result, which TF's output_shape cannot express: compute the full result and pad it",
            (hb, wb),
            (h.input, w.input)
        ));
        (hf, wf, [[0, 0], [0, 0]])
    };
    let same = [(&h, out_h, pads[0]), (&w, out_w, pads[1])]
        .iter()
        .all(|(a, o, pads)| {
            Axis::forward(
                "",
                *o as usize,
                Taps::new(a.kernel, a.stride, a.dilation),
                AxisPadding::SameUpper,
            )
            .is_ok_and(|s| s.pad_before as i64 == pads[0] && s.output == a.output)
        });
    let valid = pads.iter().all(|p| p[0] == 0 && p[1] == 0);
    let padding = if same {
        json!("SAME")
    } else if valid {
        json!("VALID")
    } else {
        json!([[0, 0], pads[0], pads[1], [0, 0]])
    };
    t.args = vals(&[
        (
            "output_shape",
            json!([p.batch, out_h, out_w, p.in_channels]),
        ),
        ("strides", json!([h.stride, w.stride])),
        ("padding", padding),
        ("dilations", json!([h.dilation, w.dilation])),
    ]);
    Ok(t)
}

fn torch_transposed(p: &Problem) -> Result<Translation> {
    let [h, w] = p.axes();
    let (hb, he, _) = transposed_window(&h)?;
    let (wb, we, _) = transposed_window(&w)?;
    let op = "torch.nn.functional.conv_transpose2d";
    // padding = pad_before, output_padding = pad_before - end pad.
    let fits = |b: i64, e: i64, a: &Axis| b - e >= 0 && b - e < a.stride.max(a.dilation) as i64;
    let mut t = Translation::single_call(op, Layout::Nchw)?;
    let (padding, output_padding) = if fits(hb, he, &h) && fits(wb, we, &w) {
        ([hb, wb], [hb - he, wb - we])
    } else {
        t.post_window = Some([[-hb, -he], [-wb, -we]]);
        t.bias_after = true;
        t.note = Some(format!(
            "padding {:?} before and {:?} after (height, width) is not expressible with PyTorch's symmetric padding + output_padding: compute with padding=0 and crop",
            (hb, wb),
            (he, we)
        ));
        ([0, 0], [0, 0])
    };
    t.args = vals(&[
        ("stride", json!([h.stride, w.stride])),
        ("padding", json!(padding)),
        ("output_padding", json!(output_padding)),
        ("groups", json!(p.groups)),
        ("dilation", json!([h.dilation, w.dilation])),
    ]);
    Ok(t)
}

fn onnx_transposed(p: &Problem) -> Result<Translation> {
    let [h, w] = p.axes();
    let (hb, he, _) = transposed_window(&h)?;
    let (wb, we, _) = transposed_window(&w)?;
    let op = "onnx.ConvTranspose";
    let fits = |e: i64, a: &Axis| e >= 0 || -e < a.stride as i64;
    let mut t = Translation::single_call(op, Layout::Nchw)?;
    let (pads, output_padding) = if fits(he, &h) && fits(we, &w) {
        ([hb, wb, he.max(0), we.max(0)], [(-he).max(0), (-we).max(0)])
    } else {
        t.post_window = Some([[-hb, -he], [-wb, -we]]);
        t.bias_after = true;
        t.note = Some("the window reaches more than stride - 1 past the full result: compute with pads 0 and pad the result".into());
        ([0; 4], [0, 0])
    };
    t.args = vals(&[
        ("pads", json!(pads)),
        ("output_padding", json!(output_padding)),
        ("strides", json!([h.stride, w.stride])),
        ("dilations", json!([h.dilation, w.dilation])),
        ("group", json!(p.groups)),
    ]);
    Ok(t)
}

fn tf_filter_gradient(p: &Problem) -> Result<Translation> {
    let [h, w] = p.axes();
    let flat = [
        0,
        0,
        h.pad_before as i64,
        h.pad_after,
        w.pad_before as i64,
        w.pad_after,
        0,
        0,
    ];
    Ok(Translation {
        op: "tf.raw_ops.Conv2DBackpropFilter",
        args: vals(&[
            ("filter_sizes", json!(p.filter_shape())),
            ("strides", json!([1, h.stride, w.stride, 1])),
            ("padding", json!("EXPLICIT")),
            ("explicit_paddings", json!(flat)),
            ("dilations", json!([1, h.dilation, w.dilation, 1])),
        ]),
        inputs: inputs("tf.raw_ops.Conv2DBackpropFilter", &Args::new())?,
        output_layout: Layout::Hwio,
        pre_pad: None,
        post_window: None,
        bias_after: false,
        note: Some("PyTorch: torch.nn.grad.conv2d_weight (symmetric padding); ONNX has no filter-gradient op".into()),
    })
}

/// The call `op(args)` in TensorFlow, PyTorch and ONNX (array arguments may be given as
/// shapes, `NAME_shape=[...]`).
pub fn translate(op: &str, args: &Args) -> Result<Vec<Translation>> {
    let (p, direction) = call::problem(op, args)?;
    let has_bias = ["bias", "B"]
        .iter()
        .any(|name| args.optional_shape(name).is_ok_and(|s| s.is_some()));
    let mut all = match direction {
        Direction::Forward => vec![
            tf_forward(&p, has_bias)?,
            torch_or_onnx_forward(&p, false)?,
            torch_or_onnx_forward(&p, true)?,
        ],
        Direction::BackwardData => vec![
            tf_transposed(&p, has_bias)?,
            torch_transposed(&p)?,
            onnx_transposed(&p)?,
        ],
        Direction::BackwardFilter => vec![tf_filter_gradient(&p)?],
    };
    if !has_bias {
        for t in &mut all {
            t.inputs.retain(|i| i.role != Role::Bias);
            t.bias_after = false;
        }
    }
    Ok(all)
}

//! Calls by name: an op as the frameworks spell it (`tf.nn.conv2d_transpose`, ...) with
//! keyword arguments (arrays or JSON values), the way `convt run` and the conformance
//! fixtures describe a call.
//!
//! ```
//! use convt::call::{self, Arg, Args, Tensor};
//! use ndarray::ArrayD;
//! let mut args = Args::new();
//! args.insert("input", Arg::Tensor(Tensor::F32(ArrayD::ones(vec![1, 2, 2, 1]))));
//! args.insert("filters", Arg::Tensor(Tensor::F32(ArrayD::ones(vec![2, 2, 1, 1]))));
//! args.insert("output_shape", Arg::Json(serde_json::json!([1, 4, 4, 1])));
//! args.insert("strides", Arg::Json(serde_json::json!(2)));
//! args.insert("padding", Arg::Json(serde_json::json!("SAME")));
//! let y = call::run("tf.nn.conv2d_transpose", &args).unwrap();
//! assert_eq!(y.shape(), vec![1, 4, 4, 1]);
//! ```

use crate::element::Element;
use crate::error::{ConvError, Result};
use crate::layout::DataFormat;
use crate::problem::{Direction, Problem};
use crate::{onnx, tf, torch};
use ndarray::{Array4, ArrayD, ArrayView4, ArrayViewD, Ix4};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// An array argument or result, in one of the supported element types.
#[derive(Debug, Clone, PartialEq)]
pub enum Tensor {
    /// `float32`.
    F32(ArrayD<f32>),
    /// `float64`.
    F64(ArrayD<f64>),
}

impl Tensor {
    /// The array's shape.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Tensor::F32(a) => a.shape().to_vec(),
            Tensor::F64(a) => a.shape().to_vec(),
        }
    }

    /// NumPy's name for the element type.
    pub fn dtype(&self) -> &'static str {
        match self {
            Tensor::F32(_) => f32::DTYPE,
            Tensor::F64(_) => f64::DTYPE,
        }
    }

    /// Reads a `.npy` file of `float32` or `float64` (either byte order, C or Fortran order).
    pub fn read_npy(path: &Path) -> Result<Tensor> {
        let bytes = std::fs::read(path).map_err(|e| ConvError::File {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Tensor::from_npy_bytes(&bytes, &path.display().to_string())
    }

    /// Parses the bytes of a `.npy` file; `name` names it in errors.
    pub fn from_npy_bytes(bytes: &[u8], name: &str) -> Result<Tensor> {
        let file_error = |message: String| ConvError::File {
            file: name.to_string(),
            message,
        };
        match ndarray_npy::ReadNpyExt::read_npy(bytes) {
            Ok(a) => return Ok(Tensor::F32(a)),
            Err(ndarray_npy::ReadNpyError::WrongDescriptor(_)) => {}
            Err(e) => return Err(file_error(format!("not a readable .npy array: {e}"))),
        }
        match ndarray_npy::ReadNpyExt::read_npy(bytes) {
            Ok(a) => Ok(Tensor::F64(a)),
            Err(ndarray_npy::ReadNpyError::WrongDescriptor(d)) => Err(file_error(format!(
                "unsupported dtype {d}; legal: float32 ('<f4', '>f4') or float64 ('<f8', '>f8')"
            ))),
            Err(e) => Err(file_error(format!("not a readable .npy array: {e}"))),
        }
    }

    /// Writes the array as a little-endian C-order `.npy` file.
    pub fn write_npy(&self, path: &Path) -> Result<()> {
        let result = match self {
            Tensor::F32(a) => ndarray_npy::write_npy(path, a),
            Tensor::F64(a) => ndarray_npy::write_npy(path, a),
        };
        result.map_err(|e| ConvError::File {
            file: path.display().to_string(),
            message: e.to_string(),
        })
    }
}

/// One keyword argument: an array or a JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// An array.
    Tensor(Tensor),
    /// Anything else: an int, a list, nested lists, a string.
    Json(Value),
}

/// Keyword arguments by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args(BTreeMap<String, Arg>);

impl Args {
    /// No arguments.
    pub fn new() -> Args {
        Args::default()
    }

    /// Adds (or replaces) an argument.
    pub fn insert(&mut self, name: &str, value: Arg) {
        self.0.insert(name.to_string(), value);
    }

    /// The argument called `name`, if given.
    pub fn get(&self, name: &str) -> Option<&Arg> {
        self.0.get(name)
    }

    /// Argument names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    fn json(&self, name: &str) -> Result<Option<&Value>> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Arg::Json(v)) => Ok(Some(v)),
            Some(Arg::Tensor(_)) => Err(ConvError::Argument {
                arg: name.into(),
                message: "must be a value (an int, list or string), not an array".into(),
            }),
        }
    }

    fn tensor(&self, name: &str) -> Result<Option<&Tensor>> {
        match self.0.get(name) {
            None | Some(Arg::Json(Value::Null)) => Ok(None),
            Some(Arg::Tensor(t)) => Ok(Some(t)),
            Some(Arg::Json(_)) => Err(ConvError::Argument {
                arg: name.into(),
                message: "must be an array (a .npy file)".into(),
            }),
        }
    }

    /// The shape of an optional array argument (absent, or JSON `null`: `None`).
    pub fn optional_shape(&self, name: &str) -> Result<Option<Vec<usize>>> {
        match self.0.get(name) {
            None | Some(Arg::Json(Value::Null))
                if !self.0.contains_key(&format!("{name}_shape")) =>
            {
                Ok(None)
            }
            _ => self.shape(name).map(Some),
        }
    }

    /// The shape of array argument `name`: from the array, or from `{name}_shape`.
    pub fn shape(&self, name: &str) -> Result<Vec<usize>> {
        let shape_name = format!("{name}_shape");
        match (self.tensor(name)?, self.json(&shape_name)?) {
            (Some(_), Some(_)) => Err(ConvError::Argument {
                arg: shape_name,
                message: format!("give either `{name}` or `{name}_shape`, not both"),
            }),
            (Some(t), None) => Ok(t.shape()),
            (None, Some(v)) => {
                let dims = int_list(&shape_name, v)?;
                if dims.iter().any(|&d| d < 0) {
                    return Err(ConvError::Negative {
                        arg: shape_name,
                        got: dims,
                    });
                }
                Ok(dims.into_iter().map(|d| d as usize).collect())
            }
            (None, None) => Err(ConvError::Argument {
                arg: name.into(),
                message: "is required (an array, or its shape as `{name}_shape=[...]`)"
                    .replace("{name}", name),
            }),
        }
    }
}

fn int(arg: &str, v: &Value) -> Result<i64> {
    v.as_i64().ok_or_else(|| ConvError::Argument {
        arg: arg.into(),
        message: format!("expected an integer, got {v}"),
    })
}

/// An int or a list of ints.
pub fn int_list(arg: &str, v: &Value) -> Result<Vec<i64>> {
    match v {
        Value::Array(items) => items.iter().map(|x| int(arg, x)).collect(),
        _ => Ok(vec![int(arg, v)?]),
    }
}

fn string<'a>(arg: &str, v: &'a Value) -> Result<&'a str> {
    v.as_str().ok_or_else(|| ConvError::Argument {
        arg: arg.into(),
        message: format!("expected a string, got {v}"),
    })
}

/// The ops `run` knows, as their frameworks spell them.
pub const OPS: &[&str] = &[
    "tf.nn.conv2d",
    "tf.nn.conv2d_transpose",
    "tf.raw_ops.Conv2DBackpropInput",
    "tf.raw_ops.Conv2DBackpropFilter",
    "torch.nn.functional.conv2d",
    "torch.nn.functional.conv_transpose2d",
    "onnx.Conv",
    "onnx.ConvTranspose",
];

/// One op's argument names: arrays first, then values.
struct Signature {
    arrays: &'static [&'static str],
    values: &'static [&'static str],
}

fn signature(op: &str) -> Result<Signature> {
    const TF_ATTRS: &[&str] = &["strides", "padding", "data_format", "dilations", "name"];
    Ok(match op {
        "tf.nn.conv2d" => Signature {
            arrays: &["input", "filters"],
            values: TF_ATTRS,
        },
        "tf.nn.conv2d_transpose" => Signature {
            arrays: &["input", "filters"],
            values: &[
                "output_shape",
                "strides",
                "padding",
                "data_format",
                "dilations",
                "name",
            ],
        },
        "tf.raw_ops.Conv2DBackpropInput" => Signature {
            arrays: &["filter", "out_backprop"],
            values: &[
                "input_sizes",
                "strides",
                "padding",
                "explicit_paddings",
                "data_format",
                "dilations",
                "use_cudnn_on_gpu",
                "name",
            ],
        },
        "tf.raw_ops.Conv2DBackpropFilter" => Signature {
            arrays: &["input", "out_backprop"],
            values: &[
                "filter_sizes",
                "strides",
                "padding",
                "explicit_paddings",
                "data_format",
                "dilations",
                "use_cudnn_on_gpu",
                "name",
            ],
        },
        "torch.nn.functional.conv2d" => Signature {
            arrays: &["input", "weight", "bias"],
            values: &["stride", "padding", "dilation", "groups"],
        },
        "torch.nn.functional.conv_transpose2d" => Signature {
            arrays: &["input", "weight", "bias"],
            values: &["stride", "padding", "output_padding", "groups", "dilation"],
        },
        "onnx.Conv" => Signature {
            arrays: &["X", "W", "B"],
            values: &[
                "auto_pad",
                "pads",
                "strides",
                "dilations",
                "group",
                "kernel_shape",
            ],
        },
        "onnx.ConvTranspose" => Signature {
            arrays: &["X", "W", "B"],
            values: &[
                "auto_pad",
                "pads",
                "strides",
                "dilations",
                "group",
                "kernel_shape",
                "output_padding",
                "output_shape",
            ],
        },
        _ => {
            return Err(ConvError::UnknownValue {
                arg: "op".into(),
                got: op.into(),
                legal: OPS.join(", "),
            });
        }
    })
}

/// The array arguments of `op` (e.g. `input`, `filters` for `tf.nn.conv2d`).
pub fn array_names(op: &str) -> Result<&'static [&'static str]> {
    Ok(signature(op)?.arrays)
}

fn check_names(op: &str, sig: &Signature, args: &Args) -> Result<()> {
    for name in args.names() {
        let base = name.strip_suffix("_shape").unwrap_or(name);
        if sig.values.contains(&name) || sig.arrays.contains(&name) || sig.arrays.contains(&base) {
            continue;
        }
        let mut legal: Vec<String> = sig.arrays.iter().map(|s| s.to_string()).collect();
        legal.extend(sig.values.iter().map(|s| s.to_string()));
        return Err(ConvError::Argument {
            arg: name.into(),
            message: format!("is not an argument of {op}; legal: {}", legal.join(", ")),
        });
    }
    Ok(())
}

/// TensorFlow options from the values in `args`.
fn tf_options(op: &str, args: &Args) -> Result<tf::Options> {
    let raw = op.starts_with("tf.raw_ops.");
    let padding = match args.json("padding")? {
        None => {
            return Err(ConvError::Argument {
                arg: "padding".into(),
                message: "is required: \"SAME\", \"VALID\" or explicit pairs".into(),
            })
        }
        Some(Value::String(s)) if s == "EXPLICIT" => {
            if !raw {
                return Err(ConvError::UnknownValue {
                    arg: "padding".into(),
                    got: s.clone(),
                    legal: "\"SAME\", \"VALID\", or a list of pairs (to use explicit padding, padding must be a list)".into(),
                });
            }
            let flat = match args.json("explicit_paddings")? {
                Some(v) => int_list("explicit_paddings", v)?,
                None => vec![],
            };
            tf::Padding::from_flat("explicit_paddings", &flat)?
        }
        Some(Value::String(s)) => tf::Padding::parse("padding", s)?,
        Some(Value::Array(pairs)) if !raw => {
            let mut out = Vec::with_capacity(pairs.len());
            for pair in pairs {
                let p = int_list("padding", pair)?;
                let pair: [i64; 2] = p.as_slice().try_into().map_err(|_| ConvError::Length {
                    arg: "padding".into(),
                    expected: "[before, after] pairs".into(),
                    got: p.clone(),
                })?;
                out.push(pair);
            }
            tf::Padding::Explicit(out)
        }
        Some(v) => {
            return Err(ConvError::UnknownValue {
                arg: "padding".into(),
                got: v.to_string(),
                legal: if raw {
                    "\"SAME\", \"VALID\", \"EXPLICIT\" (with explicit_paddings)".into()
                } else {
                    "\"SAME\", \"VALID\", or a list of 4 [before, after] pairs".into()
                },
            })
        }
    };
    if !raw {
        if let Some(v) = args.json("explicit_paddings")? {
            return Err(ConvError::Argument {
                arg: "explicit_paddings".into(),
                message: format!("is an argument of the raw ops only, got {v}"),
            });
        }
    } else if !matches!(padding, tf::Padding::Explicit(_)) {
        if let Some(v) = args.json("explicit_paddings")? {
            if !int_list("explicit_paddings", v)?.is_empty() {
                return Err(ConvError::Argument {
                    arg: "explicit_paddings".into(),
                    message: "must be empty unless padding is \"EXPLICIT\"".into(),
                });
            }
        }
    }
    let mut opts = tf::Options::new(padding);
    if let Some(v) = args.json("strides")? {
        opts.strides = int_list("strides", v)?;
    }
    if let Some(v) = args.json("dilations")? {
        opts.dilations = int_list("dilations", v)?;
    }
    if let Some(v) = args.json("data_format")? {
        opts.data_format = DataFormat::parse("data_format", string("data_format", v)?)?;
    }
    Ok(opts)
}

fn required_ints(args: &Args, name: &str) -> Result<Vec<i64>> {
    match args.json(name)? {
        Some(v) => int_list(name, v),
        None => Err(ConvError::Argument {
            arg: name.into(),
            message: "is required (a list of ints)".into(),
        }),
    }
}

fn optional_ints(args: &Args, name: &str) -> Result<Option<Vec<i64>>> {
    match args.json(name)? {
        None | Some(Value::Null) => Ok(None),
        Some(v) => int_list(name, v).map(Some),
    }
}

fn torch_options(args: &Args) -> Result<torch::Options> {
    let mut opts = torch::Options::new();
    if let Some(v) = optional_ints(args, "stride")? {
        opts.stride = v;
    }
    if let Some(v) = optional_ints(args, "dilation")? {
        opts.dilation = v;
    }
    if let Some(v) = args.json("groups")? {
        opts.groups = int("groups", v)?;
    }
    match args.json("padding")? {
        None => {}
        Some(Value::String(s)) => opts.padding = torch::Padding::parse(s)?,
        Some(v) => opts.padding = torch::Padding::Zeros(int_list("padding", v)?),
    }
    Ok(opts)
}

fn torch_transpose_options(args: &Args) -> Result<torch::TransposeOptions> {
    let mut opts = torch::TransposeOptions::new();
    if let Some(Value::String(s)) = args.json("padding")? {
        return Err(ConvError::UnknownValue {
            arg: "padding".into(),
            got: s.clone(),
            legal: "an int or a pair of ints (conv_transpose2d takes no padding strings)".into(),
        });
    }
    for (name, field) in [
        ("stride", &mut opts.stride),
        ("padding", &mut opts.padding),
        ("output_padding", &mut opts.output_padding),
        ("dilation", &mut opts.dilation),
    ] {
        if let Some(v) = optional_ints(args, name)? {
            *field = v;
        }
    }
    if let Some(v) = args.json("groups")? {
        opts.groups = int("groups", v)?;
    }
    Ok(opts)
}

fn onnx_attributes(args: &Args) -> Result<onnx::Attributes> {
    let auto_pad = match args.json("auto_pad")? {
        None => onnx::AutoPad::NotSet,
        Some(v) => onnx::AutoPad::parse(string("auto_pad", v)?)?,
    };
    Ok(onnx::Attributes {
        auto_pad,
        pads: optional_ints(args, "pads")?,
        strides: optional_ints(args, "strides")?,
        dilations: optional_ints(args, "dilations")?,
        group: optional_ints(args, "group")?.map(|g| g.first().copied().unwrap_or(1)),
        kernel_shape: optional_ints(args, "kernel_shape")?,
        output_padding: optional_ints(args, "output_padding")?,
        output_shape: optional_ints(args, "output_shape")?,
    })
}

/// The forward problem behind a call, and which direction the call computes. Array
/// arguments may be given as shapes (`input_shape=[1, 8, 8, 3]`).
pub fn problem(op: &str, args: &Args) -> Result<(Problem, Direction)> {
    let sig = signature(op)?;
    check_names(op, &sig, args)?;
    let bias = |name: &str| args.optional_shape(name);
    Ok(match op {
        "tf.nn.conv2d" => (
            tf::conv2d_problem(
                &args.shape("input")?,
                &args.shape("filters")?,
                &tf_options(op, args)?,
            )?,
            Direction::Forward,
        ),
        "tf.nn.conv2d_transpose" => (
            tf::conv2d_transpose_problem(
                &args.shape("input")?,
                &args.shape("filters")?,
                &required_ints(args, "output_shape")?,
                &tf_options(op, args)?,
            )?,
            Direction::BackwardData,
        ),
        "tf.raw_ops.Conv2DBackpropInput" => (
            tf::conv2d_backprop_input_problem(
                &required_ints(args, "input_sizes")?,
                &args.shape("filter")?,
                &args.shape("out_backprop")?,
                &tf_options(op, args)?,
            )?,
            Direction::BackwardData,
        ),
        "tf.raw_ops.Conv2DBackpropFilter" => (
            tf::conv2d_backprop_filter_problem(
                &args.shape("input")?,
                &required_ints(args, "filter_sizes")?,
                &args.shape("out_backprop")?,
                &tf_options(op, args)?,
            )?,
            Direction::BackwardFilter,
        ),
        "torch.nn.functional.conv2d" => (
            torch::conv2d_problem(
                &args.shape("input")?,
                &args.shape("weight")?,
                bias("bias")?.as_deref(),
                &torch_options(args)?,
            )?,
            Direction::Forward,
        ),
        "torch.nn.functional.conv_transpose2d" => (
            torch::conv_transpose2d_problem(
                &args.shape("input")?,
                &args.shape("weight")?,
                bias("bias")?.as_deref(),
                &torch_transpose_options(args)?,
            )?,
            Direction::BackwardData,
        ),
        "onnx.Conv" => (
            onnx::conv_problem(
                &args.shape("X")?,
                &args.shape("W")?,
                bias("B")?.as_deref(),
                &onnx_attributes(args)?,
            )?,
            Direction::Forward,
        ),
        _ => (
            onnx::conv_transpose_problem(
                &args.shape("X")?,
                &args.shape("W")?,
                bias("B")?.as_deref(),
                &onnx_attributes(args)?,
            )?,
            Direction::BackwardData,
        ),
    })
}

/// Element types a [`Tensor`] can hold.
trait TensorElement: Element {
    fn view(t: &Tensor) -> Option<ArrayViewD<'_, Self>>;
    fn wrap(a: ArrayD<Self>) -> Tensor;
}

impl TensorElement for f32 {
    fn view(t: &Tensor) -> Option<ArrayViewD<'_, f32>> {
        match t {
            Tensor::F32(a) => Some(a.view()),
            Tensor::F64(_) => None,
        }
    }
    fn wrap(a: ArrayD<f32>) -> Tensor {
        Tensor::F32(a)
    }
}

impl TensorElement for f64 {
    fn view(t: &Tensor) -> Option<ArrayViewD<'_, f64>> {
        match t {
            Tensor::F64(a) => Some(a.view()),
            Tensor::F32(_) => None,
        }
    }
    fn wrap(a: ArrayD<f64>) -> Tensor {
        Tensor::F64(a)
    }
}

fn array4<'a, T: TensorElement>(args: &'a Args, name: &str) -> Result<ArrayView4<'a, T>> {
    let t = args.tensor(name)?.ok_or_else(|| ConvError::Argument {
        arg: name.into(),
        message: "is required (an array)".into(),
    })?;
    let v = T::view(t).ok_or_else(|| ConvError::DType {
        arg: name.into(),
        got: t.dtype().into(),
        legal: format!("{} (all arrays of a call share one dtype)", T::DTYPE),
    })?;
    let shape = v.shape().to_vec();
    v.into_dimensionality::<Ix4>().map_err(|_| ConvError::Rank {
        arg: name.into(),
        expected: "4-dimensional".into(),
        shape,
    })
}

fn array1<'a, T: TensorElement>(
    args: &'a Args,
    name: &str,
) -> Result<Option<ndarray::ArrayView1<'a, T>>> {
    let Some(t) = args.tensor(name)? else {
        return Ok(None);
    };
    let v = T::view(t).ok_or_else(|| ConvError::DType {
        arg: name.into(),
        got: t.dtype().into(),
        legal: format!("{} (all arrays of a call share one dtype)", T::DTYPE),
    })?;
    let shape = v.shape().to_vec();
    v.into_dimensionality::<ndarray::Ix1>()
        .map(Some)
        .map_err(|_| ConvError::Rank {
            arg: name.into(),
            expected: "1-dimensional".into(),
            shape,
        })
}

fn run_typed<T: TensorElement>(op: &str, args: &Args) -> Result<Tensor> {
    let y: Array4<T> = match op {
        "tf.nn.conv2d" => tf::conv2d(
            array4(args, "input")?,
            array4(args, "filters")?,
            &tf_options(op, args)?,
        )?,
        "tf.nn.conv2d_transpose" => tf::conv2d_transpose(
            array4(args, "input")?,
            array4(args, "filters")?,
            &required_ints(args, "output_shape")?,
            &tf_options(op, args)?,
        )?,
        "tf.raw_ops.Conv2DBackpropInput" => tf::conv2d_backprop_input(
            &required_ints(args, "input_sizes")?,
            array4(args, "filter")?,
            array4(args, "out_backprop")?,
            &tf_options(op, args)?,
        )?,
        "tf.raw_ops.Conv2DBackpropFilter" => tf::conv2d_backprop_filter(
            array4(args, "input")?,
            &required_ints(args, "filter_sizes")?,
            array4(args, "out_backprop")?,
            &tf_options(op, args)?,
        )?,
        "torch.nn.functional.conv2d" => torch::conv2d(
            array4(args, "input")?,
            array4(args, "weight")?,
            array1(args, "bias")?,
            &torch_options(args)?,
        )?,
        "torch.nn.functional.conv_transpose2d" => torch::conv_transpose2d(
            array4(args, "input")?,
            array4(args, "weight")?,
            array1(args, "bias")?,
            &torch_transpose_options(args)?,
        )?,
        "onnx.Conv" => onnx::conv(
            array4(args, "X")?,
            array4(args, "W")?,
            array1(args, "B")?,
            &onnx_attributes(args)?,
        )?,
        _ => onnx::conv_transpose(
            array4(args, "X")?,
            array4(args, "W")?,
            array1(args, "B")?,
            &onnx_attributes(args)?,
        )?,
    };
    Ok(T::wrap(y.into_dyn()))
}

/// Runs `op` on `args`; the result has the arrays' dtype.
pub fn run(op: &str, args: &Args) -> Result<Tensor> {
    let sig = signature(op)?;
    check_names(op, &sig, args)?;
    // Validate every shape before touching data (also catches `_shape` stand-ins).
    problem(op, args)?;
    let first = sig
        .arrays
        .iter()
        .find_map(|name| args.tensor(name).ok().flatten())
        .ok_or_else(|| ConvError::Argument {
            arg: sig.arrays[0].into(),
            message: "is required (an array)".into(),
        })?;
    match first {
        Tensor::F32(_) => run_typed::<f32>(op, args),
        Tensor::F64(_) => run_typed::<f64>(op, args),
    }
}

impl Args {
    /// Parses the command-line grammar shared by every `convt` subcommand: each item is
    /// `NAME=VALUE`; a VALUE ending in `.npy` is an array file, any other VALUE is JSON
    /// (`2`, `[1,2,2,1]`, `"SAME"`) or else a bare word (`SAME`, `'SAME'`).
    ///
    /// ```
    /// use convt::call::{Arg, Args};
    /// let args = Args::parse_cli(&["strides=[1,2,2,1]".into(), "padding=SAME".into()]).unwrap();
    /// assert_eq!(args.get("padding"), Some(&Arg::Json(serde_json::json!("SAME"))));
    /// ```
    pub fn parse_cli(items: &[String]) -> Result<Args> {
        let mut args = Args::new();
        for item in items {
            let Some((name, value)) = item.split_once('=') else {
                return Err(ConvError::Argument {
                    arg: item.clone(),
                    message:
                        "expected NAME=VALUE (e.g. strides=[1,2,2,1], input=x.npy, padding=SAME)"
                            .into(),
                });
            };
            let name = name.trim();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ConvError::Argument {
                    arg: item.clone(),
                    message: "NAME must be a keyword made of letters, digits and '_'".into(),
                });
            }
            if args.get(name).is_some() {
                return Err(ConvError::Argument {
                    arg: name.into(),
                    message: "is given twice".into(),
                });
            }
            args.insert(name, parse_value(value)?);
        }
        Ok(args)
    }
}

fn parse_value(value: &str) -> Result<Arg> {
    if value.ends_with(".npy") {
        return Ok(Arg::Tensor(Tensor::read_npy(Path::new(value))?));
    }
    if let Ok(v) = serde_json::from_str::<Value>(value) {
        return Ok(Arg::Json(v));
    }
    let word = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value);
    Ok(Arg::Json(Value::String(word.to_string())))
}

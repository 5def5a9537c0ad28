//! TensorFlow's signatures: `tf.nn.conv2d`, `tf.nn.conv2d_transpose`,
//! `tf.raw_ops.Conv2DBackpropInput` and `tf.raw_ops.Conv2DBackpropFilter`.
//!
//! Arguments keep TensorFlow's names and conventions: `strides` and `dilations` are an
//! int, a 2-list `(h, w)` or a 4-list in `data_format` order whose batch and channel
//! entries must be 1; padding is `VALID`, `SAME` or explicit pairs; filters are
//! `[kh, kw, in, out]`. NCHW is supported (TensorFlow's CPU build refuses it). Grouped
//! convolutions work in all four ops (TensorFlow's CPU build refuses grouped gradients).
//!
//! The seed's worked example:
//!
//! ```
//! use convt::tf;
//! use ndarray::{array, Array4};
//! let a = array![[0.0, 0.0, 1.5], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]].into_shape_with_order((1, 3, 3, 1)).unwrap();
//! let filt = array![[1.0, 2.0], [3.0, 4.0]].into_shape_with_order((2, 2, 1, 1)).unwrap();
//! let opts = tf::Options::new(tf::Padding::Same).strides([1, 2, 2, 1]);
//! let y = tf::conv2d_transpose(a.view(), filt.view(), &[1, 6, 6, 1], &opts).unwrap();
//! assert_eq!(y.into_shape_with_order((6, 6)).unwrap().row(0).to_vec(), vec![0.0, 0.0, 0.0, 0.0, 1.5, 3.0]);
//! ```

use crate::conv;
use crate::element::Element;
use crate::error::{ConvError, Result};
use crate::layout::DataFormat;
use crate::problem::{Axis, AxisPadding, Problem, Taps};
use ndarray::{Array4, ArrayView4};

/// TensorFlow's `padding` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Padding {
    /// `"VALID"`: no padding.
    Valid,
    /// `"SAME"`: `output = ceil(input / stride)`, the odd padding pixel after.
    Same,
    /// Explicit `[[0, 0], [top, bottom], [left, right], [0, 0]]` in `data_format` order
    /// (the raw ops' `padding="EXPLICIT"` with a flat `explicit_paddings` list of 8).
    Explicit(Vec<[i64; 2]>),
}

impl Padding {
    /// Parses `"VALID"` or `"SAME"` (case-sensitive, as TensorFlow).
    pub fn parse(arg: &str, text: &str) -> Result<Padding> {
        match text {
            "VALID" => Ok(Padding::Valid),
            "SAME" => Ok(Padding::Same),
            _ => Err(ConvError::UnknownValue {
                arg: arg.into(),
                got: text.into(),
                legal: "\"SAME\", \"VALID\", or explicit pairs [[0,0],[top,bottom],[left,right],[0,0]] (raw ops: \"EXPLICIT\" with explicit_paddings)".into(),
            }),
        }
    }

    /// The raw ops' flat `explicit_paddings` (8 values in `data_format` order).
    pub fn from_flat(arg: &str, flat: &[i64]) -> Result<Padding> {
        if flat.len() != 8 {
            return Err(ConvError::Length {
                arg: arg.into(),
                expected: "8 values (a before/after pair per dimension, in data_format order) when padding is \"EXPLICIT\"".into(),
                got: flat.to_vec(),
            });
        }
        Ok(Padding::Explicit(
            flat.chunks(2).map(|c| [c[0], c[1]]).collect(),
        ))
    }
}

/// An int or a list of ints, as TensorFlow's `strides` and `dilations` take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntList(pub Vec<i64>);

impl From<i64> for IntList {
    fn from(v: i64) -> IntList {
        IntList(vec![v])
    }
}

impl<const N: usize> From<[i64; N]> for IntList {
    fn from(v: [i64; N]) -> IntList {
        IntList(v.to_vec())
    }
}

impl From<Vec<i64>> for IntList {
    fn from(v: Vec<i64>) -> IntList {
        IntList(v)
    }
}

impl From<&[i64]> for IntList {
    fn from(v: &[i64]) -> IntList {
        IntList(v.to_vec())
    }
}

/// The arguments every op shares besides the arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `strides`: 1, 2 or 4 values (4: in `data_format` order, batch/channel = 1).
    pub strides: Vec<i64>,
    /// `padding`.
    pub padding: Padding,
    /// `data_format`.
    pub data_format: DataFormat,
    /// `dilations`: 1, 2 or 4 values like `strides`.
    pub dilations: Vec<i64>,
}

impl Options {
    /// Stride 1, dilation 1, NHWC, the given padding.
    pub fn new(padding: Padding) -> Options {
        Options {
            strides: vec![1],
            padding,
            data_format: DataFormat::Nhwc,
            dilations: vec![1],
        }
    }

    /// Sets `strides`.
    pub fn strides(mut self, strides: impl Into<IntList>) -> Options {
        self.strides = strides.into().0;
        self
    }

    /// Sets `dilations`.
    pub fn dilations(mut self, dilations: impl Into<IntList>) -> Options {
        self.dilations = dilations.into().0;
        self
    }

    /// Sets `data_format`.
    pub fn data_format(mut self, data_format: DataFormat) -> Options {
        self.data_format = data_format;
        self
    }

    /// Strides or dilations resolved to `[h, w]`.
    fn spatial(&self, arg: &str, values: &[i64]) -> Result<[usize; 2]> {
        let [_, h, w, _] = self.data_format.axes();
        let hw = match values.len() {
            1 => [values[0], values[0]],
            2 => [values[0], values[1]],
            4 => {
                let [n, _, _, c] = self.data_format.axes();
                if values[n] != 1 || values[c] != 1 {
                    return Err(ConvError::BatchOrChannelEntry {
                        arg: arg.into(),
                        got: values.to_vec(),
                        neutral: 1,
                        legal: format!(
                            "{}, e.g. {}",
                            self.data_format.name(),
                            layout_example(self.data_format, arg)
                        ),
                    });
                }
                [values[h], values[w]]
            }
            _ => return Err(ConvError::Length {
                arg: arg.into(),
                expected:
                    "1, 2 or 4 values (an int, [h, w], or one per dimension in data_format order)"
                        .into(),
                got: values.to_vec(),
            }),
        };
        if hw.iter().any(|&v| v <= 0) {
            return Err(ConvError::NotPositive {
                arg: arg.into(),
                got: values.to_vec(),
            });
        }
        Ok(hw.map(|v| v as usize))
    }

    /// The padding of the height and width axes.
    fn axis_padding(&self) -> Result<[AxisPadding; 2]> {
        match &self.padding {
            Padding::Valid => Ok([AxisPadding::Valid; 2]),
            Padding::Same => Ok([AxisPadding::SameUpper; 2]),
            Padding::Explicit(pairs) => {
                let flat: Vec<i64> = pairs.iter().flatten().copied().collect();
                if pairs.len() != 4 {
                    return Err(ConvError::Length {
                        arg: "padding".into(),
                        expected: "4 [before, after] pairs, one per dimension in data_format order"
                            .into(),
                        got: flat,
                    });
                }
                if flat.iter().any(|&v| v < 0) {
                    return Err(ConvError::Negative {
                        arg: "padding".into(),
                        got: flat,
                    });
                }
                let [n, h, w, c] = self.data_format.axes();
                if pairs[n] != [0, 0] || pairs[c] != [0, 0] {
                    return Err(ConvError::BatchOrChannelEntry {
                        arg: "padding".into(),
                        got: flat,
                        neutral: 0,
                        legal: format!(
                            "{}: {}",
                            self.data_format.name(),
                            layout_example(self.data_format, "padding")
                        ),
                    });
                }
                let pad = |[before, after]: [i64; 2]| AxisPadding::Explicit {
                    before: before as usize,
                    after: after as usize,
                };
                Ok([pad(pairs[h]), pad(pairs[w])])
            }
        }
    }

    /// `[h, w]` of strides, dilations and padding, validated.
    fn resolve(&self) -> Result<([usize; 2], [usize; 2], [AxisPadding; 2])> {
        Ok((
            self.spatial("strides", &self.strides)?,
            self.spatial("dilations", &self.dilations)?,
            self.axis_padding()?,
        ))
    }
}

fn layout_example(format: DataFormat, arg: &str) -> &'static str {
    match (format, arg) {
        (DataFormat::Nhwc, "padding") => "[[0, 0], [top, bottom], [left, right], [0, 0]]",
        (DataFormat::Nchw, "padding") => "[[0, 0], [0, 0], [top, bottom], [left, right]]",
        (DataFormat::Nhwc, _) => "[1, h, w, 1]",
        (DataFormat::Nchw, _) => "[1, 1, h, w]",
    }
}

fn rank4(arg: &str, shape: &[usize], what: &str) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(shape).map_err(|_| ConvError::Rank {
        arg: arg.into(),
        expected: format!("4-dimensional {what}"),
        shape: shape.to_vec(),
    })
}

fn data_what(format: DataFormat) -> &'static str {
    match format {
        DataFormat::Nhwc => "[batch, height, width, channels] (NHWC)",
        DataFormat::Nchw => "[batch, channels, height, width] (NCHW)",
    }
}

/// Checks a filter's kernel and input-depth dimensions and returns the group count.
fn groups_for(
    filter_arg: &str,
    filter: [usize; 4],
    channels_arg: &str,
    channels: usize,
) -> Result<usize> {
    if filter[0] == 0 || filter[1] == 0 || filter[2] == 0 {
        return Err(ConvError::Shape {
            arg: filter_arg.into(),
            message: format!(
                "filter shape {filter:?} has a zero kernel or input-depth dimension; legal: kh, kw, in >= 1"
            ),
        });
    }
    if channels == 0 || !channels.is_multiple_of(filter[2]) {
        return Err(ConvError::Channels {
            arg: channels_arg.into(),
            message: format!(
                "{channels} channels, but {filter_arg} has input depth {} (dimension 2); legal: a positive multiple of {} (the multiple is the number of groups)",
                filter[2], filter[2]
            ),
        });
    }
    let groups = channels / filter[2];
    if !filter[3].is_multiple_of(groups) {
        return Err(ConvError::Channels {
            arg: filter_arg.into(),
            message: format!(
                "output depth {} (dimension 3) is not divisible by the number of groups {groups} (= {channels} channels / filter depth {}); legal: a multiple of {groups}",
                filter[3], filter[2]
            ),
        });
    }
    Ok(groups)
}

/// The forward problem of `tf.nn.conv2d(input, filters, ...)` from the shapes alone.
pub fn conv2d_problem(
    input_shape: &[usize],
    filter_shape: &[usize],
    opts: &Options,
) -> Result<Problem> {
    let x =
        opts.data_format
            .to_nhwc_shape(&rank4("input", input_shape, data_what(opts.data_format))?);
    let f = rank4(
        "filters",
        filter_shape,
        "[kh, kw, in_channels, out_channels]",
    )?;
    let (strides, dilations, padding) = opts.resolve()?;
    let groups = groups_for("filters", f, "input", x[3])?;
    let h = Axis::forward(
        "height",
        x[1],
        Taps::new(f[0], strides[0], dilations[0]),
        padding[0],
    )?;
    let w = Axis::forward(
        "width",
        x[2],
        Taps::new(f[1], strides[1], dilations[1]),
        padding[1],
    )?;
    Problem::new(x[0], x[3], f[3], groups, h, w)
}

/// Argument names of the transposed direction, which differ between the two TF ops.
struct TransposedNames {
    sizes: &'static str,
    filter: &'static str,
    dy: &'static str,
}

const TRANSPOSE_NAMES: TransposedNames = TransposedNames {
    sizes: "output_shape",
    filter: "filters",
    dy: "input",
};
const BACKPROP_INPUT_NAMES: TransposedNames = TransposedNames {
    sizes: "input_sizes",
    filter: "filter",
    dy: "out_backprop",
};

fn transposed_problem(
    names: &TransposedNames,
    sizes: &[i64],
    filter_shape: &[usize],
    dy_shape: &[usize],
    opts: &Options,
) -> Result<Problem> {
    let dy =
        opts.data_format
            .to_nhwc_shape(&rank4(names.dy, dy_shape, data_what(opts.data_format))?);
    let f = rank4(
        names.filter,
        filter_shape,
        "[kh, kw, out_channels, in_channels]",
    )?;
    if let Some(&bad) = sizes.iter().find(|&&v| v < 0) {
        return Err(ConvError::Shape {
            arg: names.sizes.into(),
            message: format!("dimension {bad} in {sizes:?} must be >= 0"),
        });
    }
    let target: [usize; 4] = match sizes.len() {
        4 => opts.data_format.to_nhwc_shape(sizes).map(|v| v as usize),
        2 => [dy[0], sizes[0] as usize, sizes[1] as usize, f[2]],
        _ => {
            return Err(ConvError::Length {
                arg: names.sizes.into(),
                expected: format!(
                    "4 values ({}) or 2 values [height, width]",
                    data_what(opts.data_format)
                ),
                got: sizes.to_vec(),
            })
        }
    };
    if target[0] != dy[0] {
        return Err(ConvError::Shape {
            arg: names.sizes.into(),
            message: format!(
                "batch size {} differs from {}'s batch size {}; legal: {}",
                target[0], names.dy, dy[0], dy[0]
            ),
        });
    }
    if f[3] != dy[3] {
        return Err(ConvError::Channels {
            arg: names.filter.into(),
            message: format!(
                "dimension 3 (in_channels) is {}, but {} has {} channels; legal: {}",
                f[3], names.dy, dy[3], dy[3]
            ),
        });
    }
    let groups = groups_for(names.filter, f, names.sizes, target[3])?;
    let (strides, dilations, padding) = opts.resolve()?;
    let h = Axis::transposed(
        names.sizes,
        "height",
        target[1],
        dy[1],
        Taps::new(f[0], strides[0], dilations[0]),
        padding[0],
    )?;
    let w = Axis::transposed(
        names.sizes,
        "width",
        target[2],
        dy[2],
        Taps::new(f[1], strides[1], dilations[1]),
        padding[1],
    )?;
    Problem::new(dy[0], target[3], f[3], groups, h, w)
}

/// The forward problem whose input gradient `tf.nn.conv2d_transpose` computes.
pub fn conv2d_transpose_problem(
    input_shape: &[usize],
    filter_shape: &[usize],
    output_shape: &[i64],
    opts: &Options,
) -> Result<Problem> {
    transposed_problem(
        &TRANSPOSE_NAMES,
        output_shape,
        filter_shape,
        input_shape,
        opts,
    )
}

/// The forward problem of `tf.raw_ops.Conv2DBackpropInput`.
pub fn conv2d_backprop_input_problem(
    input_sizes: &[i64],
    filter_shape: &[usize],
    out_backprop_shape: &[usize],
    opts: &Options,
) -> Result<Problem> {
    transposed_problem(
        &BACKPROP_INPUT_NAMES,
        input_sizes,
        filter_shape,
        out_backprop_shape,
        opts,
    )
}

/// The forward problem of `tf.raw_ops.Conv2DBackpropFilter`.
pub fn conv2d_backprop_filter_problem(
    input_shape: &[usize],
    filter_sizes: &[i64],
    out_backprop_shape: &[usize],
    opts: &Options,
) -> Result<Problem> {
    let sizes: [i64; 4] = filter_sizes.try_into().map_err(|_| ConvError::Length {
        arg: "filter_sizes".into(),
        expected: "4 values [kh, kw, in_channels, out_channels]".into(),
        got: filter_sizes.to_vec(),
    })?;
    if sizes.iter().any(|&v| v < 0) {
        return Err(ConvError::Negative {
            arg: "filter_sizes".into(),
            got: filter_sizes.to_vec(),
        });
    }
    let f = sizes.map(|v| v as usize);
    let dy = opts.data_format.to_nhwc_shape(&rank4(
        "out_backprop",
        out_backprop_shape,
        data_what(opts.data_format),
    )?);
    let p = conv2d_problem(input_shape, &f, opts)?;
    if f[3] != dy[3] {
        return Err(ConvError::Channels {
            arg: "filter_sizes".into(),
            message: format!(
                "out_channels (entry 3) is {}, but out_backprop has {} channels; legal: {}",
                f[3], dy[3], dy[3]
            ),
        });
    }
    if p.output_shape() != dy {
        return Err(ConvError::Shape {
            arg: "out_backprop".into(),
            message: format!(
                "shape {:?} (NHWC) does not match the forward output {:?} of input {:?} with filter_sizes {:?}; legal: {:?}",
                dy, p.output_shape(), p.input_shape(), f, p.output_shape()
            ),
        });
    }
    Ok(p)
}

/// `tf.nn.conv2d(input, filters, strides, padding, data_format, dilations)`.
pub fn conv2d<T: Element>(
    input: ArrayView4<T>,
    filters: ArrayView4<T>,
    opts: &Options,
) -> Result<Array4<T>> {
    let p = conv2d_problem(input.shape(), filters.shape(), opts)?;
    conv::forward_in(opts.data_format, &p, input, filters)
}

/// `tf.nn.conv2d_transpose(input, filters, output_shape, strides, padding, data_format,
/// dilations)`: the input gradient of the `conv2d` that maps `output_shape` to `input`'s
/// shape. Filters are `[kh, kw, output_channels, input_channels]`.
pub fn conv2d_transpose<T: Element>(
    input: ArrayView4<T>,
    filters: ArrayView4<T>,
    output_shape: &[i64],
    opts: &Options,
) -> Result<Array4<T>> {
    let p = conv2d_transpose_problem(input.shape(), filters.shape(), output_shape, opts)?;
    conv::backward_data_in(opts.data_format, &p, input, filters)
}

/// `tf.raw_ops.Conv2DBackpropInput(input_sizes, filter, out_backprop, strides, padding,
/// explicit_paddings, data_format, dilations)`.
pub fn conv2d_backprop_input<T: Element>(
    input_sizes: &[i64],
    filter: ArrayView4<T>,
    out_backprop: ArrayView4<T>,
    opts: &Options,
) -> Result<Array4<T>> {
    let p = conv2d_backprop_input_problem(input_sizes, filter.shape(), out_backprop.shape(), opts)?;
    conv::backward_data_in(opts.data_format, &p, out_backprop, filter)
}

/// `tf.raw_ops.Conv2DBackpropFilter(input, filter_sizes, out_backprop, strides, padding,
/// explicit_paddings, data_format, dilations)`: the filter gradient, `[kh, kw, in, out]`.
pub fn conv2d_backprop_filter<T: Element>(
    input: ArrayView4<T>,
    filter_sizes: &[i64],
    out_backprop: ArrayView4<T>,
    opts: &Options,
) -> Result<Array4<T>> {
    let p =
        conv2d_backprop_filter_problem(input.shape(), filter_sizes, out_backprop.shape(), opts)?;
    conv::backward_filter_in(opts.data_format, &p, input, out_backprop)
}

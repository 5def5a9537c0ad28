//! The three directions of a [`Problem`] on canonical-layout arrays.
//!
//! Data are NHWC, filters HWIO `[kh, kw, in_channels / groups, out_channels]`; the `*_in`
//! functions take NCHW data too (every plan but the transposed direction's stride-phase
//! ones runs on it as it lies). The framework
//! fronts ([`crate::tf`], [`crate::torch`], [`crate::onnx`]) call these after building the
//! problem; call them directly when the problem is already known.
//!
//! ```
//! use convt::problem::{Axis, AxisPadding, Problem, Taps};
//! use ndarray::Array4;
//! let axis = Axis::forward("height", 4, Taps::new(3, 1, 1), AxisPadding::Valid).unwrap();
//! let p = Problem::new(1, 1, 1, 1, axis, axis).unwrap();
//! let x = Array4::<f32>::ones(p.input_shape());
//! let w = Array4::<f32>::ones(p.filter_shape());
//! let y = convt::conv::forward(&p, x.view(), w.view()).unwrap();
//! assert_eq!(y.shape(), &[1, 2, 2, 1]);
//! assert!(y.iter().all(|&v| v == 9.0));
//! ```

use crate::element::Element;
use crate::error::{ConvError, Result};
use crate::kernels;
pub use crate::kernels::{DataPlan, FilterPlan, ForwardPlan};
use crate::layout::{standard, DataFormat};
use crate::problem::{element_count, Problem};
use ndarray::{Array4, ArrayView4};
use rayon::iter::ParallelExtend;

/// Refuses an array whose shape is not the problem's (argument `arg`).
pub(crate) fn check(arg: &str, got: &[usize], expected: [usize; 4]) -> Result<()> {
    if got != expected {
        return Err(ConvError::Shape {
            arg: arg.into(),
            message: format!("shape {got:?} does not match the problem's {expected:?}"),
        });
    }
    Ok(())
}

/// An empty vector with room for the elements of `shape`, and their count, or an error
/// (never an abort) when they do not fit.
fn try_room<T>(arg: &str, shape: [usize; 4]) -> Result<(Vec<T>, usize)> {
    let len = element_count(arg, &shape)?;
    let mut data: Vec<T> = Vec::new();
    data.try_reserve_exact(len)
        .map_err(|_| ConvError::TooLarge {
            arg: arg.into(),
            message: format!(
                "cannot allocate {len} elements ({} bytes) for shape {shape:?}",
                len.saturating_mul(std::mem::size_of::<T>())
            ),
        })?;
    Ok((data, len))
}

/// `data` (holding every element) as an array of `shape`.
fn into_array<T>(arg: &str, shape: [usize; 4], data: Vec<T>) -> Result<Array4<T>> {
    Array4::from_shape_vec(shape, data).map_err(|e| ConvError::Shape {
        arg: arg.into(),
        message: e.to_string(),
    })
}

/// `data`, empty, filled with `len` zeros.
fn fill_zeros<T: Element>(data: &mut Vec<T>, len: usize) {
    // Zeroed by all threads: a single-threaded memset of a large output would cost as
    // much as a two-thread kernel's share of the work.
    if len < 1 << 16 {
        data.resize(len, T::zero());
    } else {
        data.par_extend(rayon::iter::repeat_n(T::zero(), len));
    }
}

/// A zero-filled array of `shape`, or an error (never an abort) when it does not fit.
pub fn try_zeros<T: Element>(arg: &str, shape: [usize; 4]) -> Result<Array4<T>> {
    let (mut data, len) = try_room(arg, shape)?;
    fill_zeros(&mut data, len);
    into_array(arg, shape, data)
}

/// A new output array of `shape`: filled by `fresh` (the plans that store every value,
/// given empty room for `len` values), or, where it declines, zero-filled for the other
/// plans; with whether `fresh` filled it.
fn new_output<T: Element>(
    shape: [usize; 4],
    fresh: impl FnOnce(&mut Vec<T>, usize) -> bool,
) -> Result<(Array4<T>, bool)> {
    let (mut data, len) = try_room("output", shape)?;
    let filled = fresh(&mut data, len);
    if !filled {
        fill_zeros(&mut data, len);
    }
    Ok((into_array("output", shape, data)?, filled))
}

/// `y = conv(x, w)`: x NHWC, w HWIO, result NHWC.
pub fn forward<T: Element>(p: &Problem, x: ArrayView4<T>, w: ArrayView4<T>) -> Result<Array4<T>> {
    run_forward(None, DataFormat::Nhwc, p, x, w)
}

/// [`forward`] with a chosen algorithm (for tests and benchmarks; results agree with the
/// reference whatever the plan, exactly for [`ForwardPlan::Im2col`], to rounding for
/// [`ForwardPlan::Winograd`]).
pub fn forward_with<T: Element>(
    plan: ForwardPlan,
    p: &Problem,
    x: ArrayView4<T>,
    w: ArrayView4<T>,
) -> Result<Array4<T>> {
    forward_in_with(plan, DataFormat::Nhwc, p, x, w)
}

/// [`forward`] with `x` and the result in `format` (the filter HWIO). Every plan runs on
/// NCHW data as it lies, with no layout copies: im2col gathers its columns from the
/// channel planes (a pointwise convolution is one GEMM per image), Winograd gathers its
/// tiles from them and writes each channel's lines, the depthwise loops run along lines.
pub fn forward_in<T: Element>(
    format: DataFormat,
    p: &Problem,
    x: ArrayView4<T>,
    w: ArrayView4<T>,
) -> Result<Array4<T>> {
    run_forward(None, format, p, x, w)
}

/// [`forward_in`] with a chosen algorithm.
pub fn forward_in_with<T: Element>(
    plan: ForwardPlan,
    format: DataFormat,
    p: &Problem,
    x: ArrayView4<T>,
    w: ArrayView4<T>,
) -> Result<Array4<T>> {
    run_forward(Some(plan), format, p, x, w)
}

/// Every forward entry point: checks the problem (once), then runs `plan`, or the one
/// [`ForwardPlan::choose`] picks.
fn run_forward<T: Element>(
    plan: Option<ForwardPlan>,
    format: DataFormat,
    p: &Problem,
    x: ArrayView4<T>,
    w: ArrayView4<T>,
) -> Result<Array4<T>> {
    p.check()?;
    let plan = plan.unwrap_or_else(|| ForwardPlan::choose(p));
    check("input", x.shape(), format.from_nhwc_shape(p.input_shape()))?;
    check("filter", w.shape(), p.filter_shape())?;
    let (x, w) = (standard(x), standard(w));
    let shape = format.from_nhwc_shape(p.output_shape());
    let (mut y, fresh) = new_output(shape, |data, len| {
        kernels::forward_fresh(plan, format, p, (slice(&x), slice(&w)), data, len)
    })?;
    if fresh {
        return Ok(y);
    }
    kernels::forward_with(
        plan,
        format,
        p,
        slice(&x),
        slice(&w),
        y.as_slice_mut().unwrap_or_default(),
    );
    Ok(y)
}

/// `dx = conv^T(dy, w)` (input gradient, transposed convolution): dy NHWC, w HWIO,
/// result NHWC of the problem's input shape.
pub fn backward_data<T: Element>(
    p: &Problem,
    dy: ArrayView4<T>,
    w: ArrayView4<T>,
) -> Result<Array4<T>> {
    run_backward_data(None, DataFormat::Nhwc, p, dy, w)
}

/// [`backward_data`] with a chosen algorithm (for tests and benchmarks; results agree
/// with the reference whatever the plan).
pub fn backward_data_with<T: Element>(
    plan: DataPlan,
    p: &Problem,
    dy: ArrayView4<T>,
    w: ArrayView4<T>,
) -> Result<Array4<T>> {
    backward_data_in_with(plan, DataFormat::Nhwc, p, dy, w)
}

/// [`backward_data`] with `dy` and the result in `format` (the filter HWIO). On NCHW
/// data, the column, Winograd, sub-pixel, depthwise and direct plans run on the arrays as
/// they lie (tiles and windows gathered from the channel planes, results written to each
/// channel's lines); the stride-phase plans go through NHWC (a blocked transpose each
/// way, [`crate::layout::standard`]).
///
/// ```
/// use convt::{conv, layout::DataFormat, problem::{Axis, AxisPadding, Problem, Taps}};
/// // U-Net's 2x2 stride-2 up-convolution, 8 -> 4 channels, on NCHW data.
/// let axis = Axis::forward("height", 6, Taps::new(2, 2, 1), AxisPadding::Valid).unwrap();
/// let p = Problem::new(1, 4, 8, 1, axis, axis).unwrap();
/// let dy = ndarray::Array4::<f32>::ones((1, 8, 3, 3));
/// let w = ndarray::Array4::<f32>::ones(p.filter_shape());
/// let dx = conv::backward_data_in(DataFormat::Nchw, &p, dy.view(), w.view()).unwrap();
/// assert_eq!(dx.shape(), &[1, 4, 6, 6]);
/// assert!(dx.iter().all(|&v| v == 8.0));
/// ```
pub fn backward_data_in<T: Element>(
    format: DataFormat,
    p: &Problem,
    dy: ArrayView4<T>,
    w: ArrayView4<T>,
) -> Result<Array4<T>> {
    run_backward_data(None, format, p, dy, w)
}

/// [`backward_data_in`] with a chosen algorithm.
pub fn backward_data_in_with<T: Element>(
    plan: DataPlan,
    format: DataFormat,
    p: &Problem,
    dy: ArrayView4<T>,
    w: ArrayView4<T>,
) -> Result<Array4<T>> {
    run_backward_data(Some(plan), format, p, dy, w)
}

/// Every backward-data entry point: checks the problem (once), then runs `plan`, or the
/// one [`DataPlan::choose`] picks.
fn run_backward_data<T: Element>(
    plan: Option<DataPlan>,
    format: DataFormat,
    p: &Problem,
    dy: ArrayView4<T>,
    w: ArrayView4<T>,
) -> Result<Array4<T>> {
    p.check()?;
    let plan = plan.unwrap_or_else(|| DataPlan::choose(p));
    check(
        "out_backprop",
        dy.shape(),
        format.from_nhwc_shape(p.output_shape()),
    )?;
    check("filter", w.shape(), p.filter_shape())?;
    let (dy, w) = (standard(dy), standard(w));
    let (dy_values, w_values) = (slice(&dy), slice(&w));
    let shape = format.from_nhwc_shape(p.input_shape());
    let (mut dx, fresh) = new_output(shape, |data, len| {
        kernels::backward_data_fresh(plan, format, p, (dy_values, w_values), data, len)
    })?;
    if fresh {
        return Ok(dx);
    }
    let dx_values = dx.as_slice_mut().unwrap_or_default();
    if kernels::backward_data_with(plan, format, p, dy_values, w_values, dx_values) {
        return Ok(dx);
    }
    // The plan has no form for this layout: through NHWC.
    drop(dx);
    let dx = backward_data_with(plan, p, format.view_as_nhwc(dy.view()), w.view())?;
    Ok(format.from_nhwc(dx))
}

/// `dw` (HWIO) from x and dy (NHWC).
pub fn backward_filter<T: Element>(
    p: &Problem,
    x: ArrayView4<T>,
    dy: ArrayView4<T>,
) -> Result<Array4<T>> {
    run_backward_filter(None, DataFormat::Nhwc, p, x, dy)
}

/// [`backward_filter`] with a chosen algorithm (for tests and benchmarks; results agree
/// with the reference whatever the plan).
pub fn backward_filter_with<T: Element>(
    plan: FilterPlan,
    p: &Problem,
    x: ArrayView4<T>,
    dy: ArrayView4<T>,
) -> Result<Array4<T>> {
    backward_filter_in_with(plan, DataFormat::Nhwc, p, x, dy)
}

/// [`backward_filter`] with `x` and `dy` in `format` (the result HWIO). On NCHW data
/// every plan runs on the arrays as they lie: im2col gathers columns from the input
/// planes and reads `dy`'s channel rows in place; Winograd's stages the rectangles each
/// block of tiles reads, channels-last, a block at a time.
///
/// ```
/// use convt::{conv, layout::DataFormat, problem::{Axis, AxisPadding, Problem, Taps}};
/// // A 3x3 convolution's filter gradient from NCHW activations.
/// let axis = Axis::forward("height", 5, Taps::new(3, 1, 1), AxisPadding::Valid).unwrap();
/// let p = Problem::new(1, 2, 4, 1, axis, axis).unwrap();
/// let x = ndarray::Array4::<f64>::ones((1, 2, 5, 5));
/// let dy = ndarray::Array4::<f64>::ones((1, 4, 3, 3));
/// let dw = conv::backward_filter_in(DataFormat::Nchw, &p, x.view(), dy.view()).unwrap();
/// assert_eq!(dw.shape(), &[3, 3, 2, 4]);
/// assert!(dw.iter().all(|&v| v == 9.0));
/// ```
pub fn backward_filter_in<T: Element>(
    format: DataFormat,
    p: &Problem,
    x: ArrayView4<T>,
    dy: ArrayView4<T>,
) -> Result<Array4<T>> {
    run_backward_filter(None, format, p, x, dy)
}

/// [`backward_filter_in`] with a chosen algorithm.
pub fn backward_filter_in_with<T: Element>(
    plan: FilterPlan,
    format: DataFormat,
    p: &Problem,
    x: ArrayView4<T>,
    dy: ArrayView4<T>,
) -> Result<Array4<T>> {
    run_backward_filter(Some(plan), format, p, x, dy)
}

/// Every filter-gradient entry point: checks the problem (once), then runs `plan`, or
/// the one [`FilterPlan::choose`] picks.
fn run_backward_filter<T: Element>(
    plan: Option<FilterPlan>,
    format: DataFormat,
    p: &Problem,
    x: ArrayView4<T>,
    dy: ArrayView4<T>,
) -> Result<Array4<T>> {
    p.check()?;
    let plan = plan.unwrap_or_else(|| FilterPlan::choose(p));
    check("input", x.shape(), format.from_nhwc_shape(p.input_shape()))?;
    check(
        "out_backprop",
        dy.shape(),
        format.from_nhwc_shape(p.output_shape()),
    )?;
    let (x, dy) = (standard(x), standard(dy));
    let mut dw = try_zeros("filter", p.filter_shape())?;
    let (x_values, dy_values) = (slice(&x), slice(&dy));
    let dw_values = dw.as_slice_mut().unwrap_or_default();
    kernels::backward_filter_with(plan, format, p, x_values, dy_values, dw_values);
    Ok(dw)
}

fn slice<'a, T>(a: &'a ndarray::CowArray<'_, T, ndarray::Ix4>) -> &'a [T] {
    a.as_slice().unwrap_or_default()
}

/// Adds `bias[c]` to every element of channel `c` of an array in `format`.
pub fn add_bias<T: Element>(y: &mut Array4<T>, bias: ndarray::ArrayView1<T>, format: DataFormat) {
    let channels = ndarray::Axis(format.axes()[3]);
    for mut pixel in y.lanes_mut(channels) {
        pixel += &bias;
    }
}

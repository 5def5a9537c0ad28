//! The definitions as plain loops: the oracle every fast kernel is tested against.
//!
//! Written from the index equations of `SEMANTICS.md` section 1, independently of
//! the fast kernels behind [`crate::conv`]. Canonical layouts: data NHWC, filter HWIO
//! `[kh, kw, in_channels / groups, out_channels]`. The transposed direction is written in
//! its *scatter* form: every `dy` element stamps a scaled copy of the kernel into `dx`.

use crate::conv::check;
use crate::element::Element;
use crate::error::{ConvError, Result};
use crate::problem::Problem;
use ndarray::{Array4, ArrayView4};

/// Position read by output index `o` and tap `k` on one axis, if inside the input.
fn source(o: usize, k: usize, axis: &crate::problem::Axis) -> Option<usize> {
    let pos = (o * axis.stride + k * axis.dilation) as i64 - axis.pad_before as i64;
    (pos >= 0 && (pos as usize) < axis.input).then_some(pos as usize)
}

/// `y[n, oh, ow, co] = sum_{kh, kw, ci} x[n, oh*s - pb + kh*d, ow*s - pb + kw*d, g*Cg + ci] * w[kh, kw, ci, co]`.
pub fn forward<T: Element>(p: &Problem, x: ArrayView4<T>, w: ArrayView4<T>) -> Result<Array4<T>> {
    p.check()?;
    check("input", x.shape(), p.input_shape())?;
    check("filter", w.shape(), p.filter_shape())?;
    let (cg, og) = (p.in_per_group(), p.out_per_group());
    let mut y = Array4::<T>::zeros(p.output_shape());
    for ((n, oh, ow, co), out) in y.indexed_iter_mut() {
        let g = co / og;
        let mut acc = T::zero();
        for kh in 0..p.height.kernel {
            let Some(ih) = source(oh, kh, &p.height) else {
                continue;
            };
            for kw in 0..p.width.kernel {
                let Some(iw) = source(ow, kw, &p.width) else {
                    continue;
                };
                for ci in 0..cg {
                    acc += x[[n, ih, iw, g * cg + ci]] * w[[kh, kw, ci, co]];
                }
            }
        }
        *out = acc;
    }
    Ok(y)
}

/// Scatter form of the input gradient: every `dy[n, oh, ow, co]` adds
/// `dy * w[kh, kw, ci, co]` into `dx[n, oh*s - pb + kh*d, ow*s - pb + kw*d, g*Cg + ci]`;
/// contributions that land in the padding are dropped.
pub fn backward_data<T: Element>(
    p: &Problem,
    dy: ArrayView4<T>,
    w: ArrayView4<T>,
) -> Result<Array4<T>> {
    p.check()?;
    check("out_backprop", dy.shape(), p.output_shape())?;
    check("filter", w.shape(), p.filter_shape())?;
    let (cg, og) = (p.in_per_group(), p.out_per_group());
    let mut dx = Array4::<T>::zeros(p.input_shape());
    for ((n, oh, ow, co), &v) in dy.indexed_iter() {
        let g = co / og;
        for kh in 0..p.height.kernel {
            let Some(ih) = source(oh, kh, &p.height) else {
                continue;
            };
            for kw in 0..p.width.kernel {
                let Some(iw) = source(ow, kw, &p.width) else {
                    continue;
                };
                for ci in 0..cg {
                    dx[[n, ih, iw, g * cg + ci]] += v * w[[kh, kw, ci, co]];
                }
            }
        }
    }
    Ok(dx)
}

/// `dw[kh, kw, ci, co] = sum_{n, oh, ow} x[n, oh*s - pb + kh*d, ow*s - pb + kw*d, g*Cg + ci] * dy[n, oh, ow, co]`.
pub fn backward_filter<T: Element>(
    p: &Problem,
    x: ArrayView4<T>,
    dy: ArrayView4<T>,
) -> Result<Array4<T>> {
    p.check()?;
    check("input", x.shape(), p.input_shape())?;
    check("out_backprop", dy.shape(), p.output_shape())?;
    let (cg, og) = (p.in_per_group(), p.out_per_group());
    let mut dw = Array4::<T>::zeros(p.filter_shape());
    for ((kh, kw, ci, co), out) in dw.indexed_iter_mut() {
        let g = co / og;
        let mut acc = T::zero();
        for n in 0..p.batch {
            for oh in 0..p.height.output {
                let Some(ih) = source(oh, kh, &p.height) else {
                    continue;
                };
                for ow in 0..p.width.output {
                    let Some(iw) = source(ow, kw, &p.width) else {
                        continue;
                    };
                    acc += x[[n, ih, iw, g * cg + ci]] * dy[[n, oh, ow, co]];
                }
            }
        }
        *out = acc;
    }
    Ok(dw)
}

/// A call by name (`convt::call` conventions) computed with the loops above, in f64, in
/// canonical layout (NHWC data, HWIO filter gradient), bias included: the oracle for
/// fuzzing and for tests of the fronts.
pub fn call(op: &str, args: &crate::call::Args) -> Result<ndarray::ArrayD<f64>> {
    use crate::call::Tensor;
    use crate::problem::Direction;
    let (p, direction) = crate::call::problem(op, args)?;
    let arrays = crate::translate::canonical(op, args)?;
    let f64s = |t: &Tensor| -> Result<Array4<f64>> {
        let a = match t {
            Tensor::F32(a) => a.mapv(f64::from),
            Tensor::F64(a) => a.clone(),
        };
        a.into_dimensionality().map_err(|e| ConvError::Shape {
            arg: "array".into(),
            message: e.to_string(),
        })
    };
    let missing = |arg: &str| ConvError::Argument {
        arg: arg.into(),
        message: "is required (an array)".into(),
    };
    let data = f64s(&arrays.data)?;
    let mut y = match direction {
        Direction::Forward => forward(
            &p,
            data.view(),
            f64s(arrays.filter.as_ref().ok_or_else(|| missing("filter"))?)?.view(),
        )?,
        Direction::BackwardData => backward_data(
            &p,
            data.view(),
            f64s(arrays.filter.as_ref().ok_or_else(|| missing("filter"))?)?.view(),
        )?,
        Direction::BackwardFilter => backward_filter(
            &p,
            data.view(),
            f64s(
                arrays
                    .grad
                    .as_ref()
                    .ok_or_else(|| missing("out_backprop"))?,
            )?
            .view(),
        )?,
    };
    if let Some(b) = &arrays.bias {
        let b = match b {
            Tensor::F32(a) => a.mapv(f64::from),
            Tensor::F64(a) => a.clone(),
        };
        for mut lane in y.lanes_mut(ndarray::Axis(3)) {
            lane += &b;
        }
    }
    Ok(y.into_dyn())
}

//! Reverse-mode automatic differentiation: a tape of operations and their backward rules.
//!
//! The convolution family is closed under differentiation, so the backward rule of each
//! convolution op is another op of the family, on the same [`Problem`]:
//!
//! | op (canonical layouts) | d/d first argument | d/d second argument |
//! |---|---|---|
//! | `conv2d(x, w)` | `conv2d_transpose(g, w)` | `backprop_filter(x, g)` |
//! | `conv2d_transpose(u, w)` | `conv2d(g, w)` | `backprop_filter(g, u)` |
//! | `backprop_filter(x, u)` | `conv2d_transpose(u, g)` | `conv2d(x, g)` |
//!
//! Besides them the tape has what losses and small networks need: `add`, `sub`, `mul`,
//! `scale`, `bias_add`, `relu`, `sigmoid`, `tanh`, `sum`, `mean`, `square`, `reshape` and
//! `permute` (for NCHW data).
//!
//! ```
//! use convt::autodiff::Tape;
//! use convt::problem::{Axis, AxisPadding, Problem, Taps};
//! use ndarray::ArrayD;
//! let axis = Axis::forward("height", 4, Taps::new(3, 1, 1), AxisPadding::Valid).unwrap();
//! let p = Problem::new(1, 1, 1, 1, axis, axis).unwrap();
//! let tape = Tape::<f64>::new();
//! let x = tape.leaf(ArrayD::ones(vec![1, 4, 4, 1]));
//! let w = tape.leaf(ArrayD::ones(vec![3, 3, 1, 1]));
//! let loss = tape.sum(tape.conv2d(x, w, &p).unwrap());
//! let grads = tape.backward(loss).unwrap();
//! // Each tap of w sees 4 input values (the 2x2 outputs).
//! assert!(grads.get(w).unwrap().iter().all(|&g| g == 4.0));
//! ```

use crate::conv;
use crate::element::Element;
use crate::error::{ConvError, Result};
use crate::problem::Problem;
use ndarray::{Array4, ArrayD, Ix4, IxDyn};
use std::cell::RefCell;

/// A value on the tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var(usize);

#[derive(Debug, Clone)]
enum Op {
    Leaf,
    Add(Var, Var),
    Sub(Var, Var),
    Mul(Var, Var),
    Scale(Var, f64),
    /// NHWC data plus a per-channel bias.
    BiasAdd(Var, Var),
    Relu(Var),
    Sigmoid(Var),
    Tanh(Var),
    Sum(Var),
    Mean(Var),
    Square(Var),
    Reshape(Var),
    Permute(Var, Vec<usize>),
    Conv(Var, Var, Problem),
    ConvTranspose(Var, Var, Problem),
    FilterGrad(Var, Var, Problem),
}

struct Node<T> {
    value: ArrayD<T>,
    op: Op,
}

/// The tape: records operations as they run, then differentiates them in reverse.
pub struct Tape<T: Element> {
    nodes: RefCell<Vec<Node<T>>>,
}

impl<T: Element> Default for Tape<T> {
    fn default() -> Self {
        Tape::new()
    }
}

/// Gradients of one scalar with respect to every value on the tape.
pub struct Gradients<T> {
    grads: Vec<Option<ArrayD<T>>>,
}

impl<T> Gradients<T> {
    /// The gradient with respect to `v` (`None` if the output does not depend on it).
    pub fn get(&self, v: Var) -> Option<&ArrayD<T>> {
        self.grads.get(v.0).and_then(Option::as_ref)
    }
}

fn shape_error(arg: &str, message: String) -> ConvError {
    ConvError::Shape {
        arg: arg.into(),
        message,
    }
}

fn four<T: Element>(a: &ArrayD<T>, arg: &str) -> Result<Array4<T>> {
    a.clone()
        .into_dimensionality::<Ix4>()
        .map_err(|_| shape_error(arg, format!("must be 4-dimensional, got {:?}", a.shape())))
}

impl<T: Element> Tape<T> {
    /// An empty tape.
    pub fn new() -> Tape<T> {
        Tape {
            nodes: RefCell::new(Vec::new()),
        }
    }

    fn push(&self, value: ArrayD<T>, op: Op) -> Var {
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(Node { value, op });
        Var(nodes.len() - 1)
    }

    /// The current value of `v`.
    pub fn value(&self, v: Var) -> ArrayD<T> {
        self.nodes.borrow()[v.0].value.clone()
    }

    /// A leaf: an input or a parameter.
    pub fn leaf(&self, value: ArrayD<T>) -> Var {
        self.push(value, Op::Leaf)
    }

    fn same_shape(&self, a: Var, b: Var, what: &str) -> Result<()> {
        let nodes = self.nodes.borrow();
        if nodes[a.0].value.shape() != nodes[b.0].value.shape() {
            return Err(shape_error(
                what,
                format!(
                    "shapes {:?} and {:?} differ",
                    nodes[a.0].value.shape(),
                    nodes[b.0].value.shape()
                ),
            ));
        }
        Ok(())
    }

    fn unary(&self, a: Var, op: Op, f: impl Fn(T) -> T) -> Var {
        let v = self.nodes.borrow()[a.0].value.mapv(f);
        self.push(v, op)
    }

    /// `a + b` (same shapes).
    pub fn add(&self, a: Var, b: Var) -> Result<Var> {
        self.same_shape(a, b, "add")?;
        let v = &self.nodes.borrow()[a.0].value + &self.nodes.borrow()[b.0].value;
        Ok(self.push(v, Op::Add(a, b)))
    }

    /// `a - b` (same shapes).
    pub fn sub(&self, a: Var, b: Var) -> Result<Var> {
        self.same_shape(a, b, "sub")?;
        let v = &self.nodes.borrow()[a.0].value - &self.nodes.borrow()[b.0].value;
        Ok(self.push(v, Op::Sub(a, b)))
    }

    /// `a * b` elementwise (same shapes).
    pub fn mul(&self, a: Var, b: Var) -> Result<Var> {
        self.same_shape(a, b, "mul")?;
        let v = &self.nodes.borrow()[a.0].value * &self.nodes.borrow()[b.0].value;
        Ok(self.push(v, Op::Mul(a, b)))
    }

    /// `c * a`.
    pub fn scale(&self, a: Var, c: f64) -> Var {
        let k = T::from(c).unwrap_or_else(T::zero);
        self.unary(a, Op::Scale(a, c), |x| x * k)
    }

    /// NHWC `x` plus `bias[c]` on every element of channel `c`.
    pub fn bias_add(&self, x: Var, bias: Var) -> Result<Var> {
        let nodes = self.nodes.borrow();
        let (xv, bv) = (&nodes[x.0].value, &nodes[bias.0].value);
        if bv.ndim() != 1 || xv.shape().last() != Some(&bv.len()) {
            return Err(shape_error(
                "bias",
                format!(
                    "shape {:?} does not match the last axis of {:?}",
                    bv.shape(),
                    xv.shape()
                ),
            ));
        }
        let mut v = xv.clone();
        for mut lane in v.lanes_mut(ndarray::Axis(xv.ndim() - 1)) {
            lane += bv;
        }
        drop(nodes);
        Ok(self.push(v, Op::BiasAdd(x, bias)))
    }

    /// `max(a, 0)`.
    pub fn relu(&self, a: Var) -> Var {
        self.unary(a, Op::Relu(a), |x| x.max(T::zero()))
    }

    /// `1 / (1 + exp(-a))`.
    pub fn sigmoid(&self, a: Var) -> Var {
        self.unary(a, Op::Sigmoid(a), |x| T::one() / (T::one() + (-x).exp()))
    }

    /// `tanh(a)`.
    pub fn tanh(&self, a: Var) -> Var {
        self.unary(a, Op::Tanh(a), |x| x.tanh())
    }

    /// `a * a`.
    pub fn square(&self, a: Var) -> Var {
        self.unary(a, Op::Square(a), |x| x * x)
    }

    /// The sum of all elements (a scalar, shape `[]`).
    pub fn sum(&self, a: Var) -> Var {
        let s = self.nodes.borrow()[a.0].value.sum();
        self.push(ArrayD::from_elem(IxDyn(&[]), s), Op::Sum(a))
    }

    /// The mean of all elements (a scalar).
    pub fn mean(&self, a: Var) -> Var {
        let nodes = self.nodes.borrow();
        let n = T::from(nodes[a.0].value.len().max(1)).unwrap_or_else(T::one);
        let s = nodes[a.0].value.sum() / n;
        drop(nodes);
        self.push(ArrayD::from_elem(IxDyn(&[]), s), Op::Mean(a))
    }

    /// The same elements in a new shape (row-major order).
    pub fn reshape(&self, a: Var, shape: &[usize]) -> Result<Var> {
        let v = self.nodes.borrow()[a.0]
            .value
            .as_standard_layout()
            .into_owned();
        let from = v.shape().to_vec();
        let v = v
            .into_shape_with_order(IxDyn(shape))
            .map_err(|_| shape_error("reshape", format!("cannot reshape {from:?} to {shape:?}")))?;
        Ok(self.push(v, Op::Reshape(a)))
    }

    /// Axes permuted (`[0, 2, 3, 1]`: NCHW to NHWC).
    pub fn permute(&self, a: Var, axes: &[usize]) -> Result<Var> {
        let v = self.nodes.borrow()[a.0].value.clone();
        let mut sorted = axes.to_vec();
        sorted.sort_unstable();
        if sorted != (0..v.ndim()).collect::<Vec<_>>() {
            return Err(shape_error(
                "permute",
                format!("{axes:?} is not a permutation of the {} axes", v.ndim()),
            ));
        }
        let v = v
            .permuted_axes(IxDyn(axes))
            .as_standard_layout()
            .into_owned();
        Ok(self.push(v, Op::Permute(a, axes.to_vec())))
    }

    /// `conv2d(x, w)` of problem `p`: x NHWC, w HWIO.
    pub fn conv2d(&self, x: Var, w: Var, p: &Problem) -> Result<Var> {
        let (xv, wv) = (
            four(&self.value(x), "input")?,
            four(&self.value(w), "filter")?,
        );
        let y = conv::forward(p, xv.view(), wv.view())?;
        Ok(self.push(y.into_dyn(), Op::Conv(x, w, *p)))
    }

    /// `conv2d_transpose(u, w)` of problem `p` (the input gradient of its conv2d): u NHWC in
    /// the problem's output shape, w HWIO; the result has the problem's input shape.
    pub fn conv2d_transpose(&self, u: Var, w: Var, p: &Problem) -> Result<Var> {
        let (uv, wv) = (
            four(&self.value(u), "input")?,
            four(&self.value(w), "filter")?,
        );
        let y = conv::backward_data(p, uv.view(), wv.view())?;
        Ok(self.push(y.into_dyn(), Op::ConvTranspose(u, w, *p)))
    }

    /// `conv2d_backprop_filter(x, u)` of problem `p`: x NHWC (input shape), u NHWC (output
    /// shape); the result is HWIO.
    pub fn conv2d_backprop_filter(&self, x: Var, u: Var, p: &Problem) -> Result<Var> {
        let (xv, uv) = (
            four(&self.value(x), "input")?,
            four(&self.value(u), "out_backprop")?,
        );
        let y = conv::backward_filter(p, xv.view(), uv.view())?;
        Ok(self.push(y.into_dyn(), Op::FilterGrad(x, u, *p)))
    }

    /// Gradients of the scalar `output` with respect to every value on the tape.
    pub fn backward(&self, output: Var) -> Result<Gradients<T>> {
        let nodes = self.nodes.borrow();
        if nodes[output.0].value.len() != 1 {
            return Err(shape_error(
                "output",
                format!(
                    "backward needs a scalar, got shape {:?}",
                    nodes[output.0].value.shape()
                ),
            ));
        }
        let mut grads: Vec<Option<ArrayD<T>>> = vec![None; nodes.len()];
        grads[output.0] = Some(ArrayD::from_elem(nodes[output.0].value.raw_dim(), T::one()));
        let accumulate =
            |grads: &mut Vec<Option<ArrayD<T>>>, v: Var, g: ArrayD<T>| match &mut grads[v.0] {
                Some(existing) => *existing += &g,
                slot => *slot = Some(g),
            };
        for id in (0..=output.0).rev() {
            let Some(g) = grads[id].take() else { continue };
            let value = |v: Var| &nodes[v.0].value;
            match &nodes[id].op {
                Op::Leaf => {}
                Op::Add(a, b) => {
                    accumulate(&mut grads, *a, g.clone());
                    accumulate(&mut grads, *b, g.clone());
                }
                Op::Sub(a, b) => {
                    accumulate(&mut grads, *a, g.clone());
                    accumulate(&mut grads, *b, g.mapv(|x| -x));
                }
                Op::Mul(a, b) => {
                    accumulate(&mut grads, *a, &g * value(*b));
                    accumulate(&mut grads, *b, &g * value(*a));
                }
                Op::Scale(a, c) => {
                    let k = T::from(*c).unwrap_or_else(T::zero);
                    accumulate(&mut grads, *a, g.mapv(|x| x * k));
                }
                Op::BiasAdd(x, b) => {
                    accumulate(&mut grads, *x, g.clone());
                    let last = g.ndim() - 1;
                    let mut db = ArrayD::zeros(IxDyn(&[g.shape()[last]]));
                    for lane in g.lanes(ndarray::Axis(last)) {
                        db += &lane;
                    }
                    accumulate(&mut grads, *b, db);
                }
                Op::Relu(a) => {
                    let d = ndarray::Zip::from(&g).and(value(*a)).map_collect(|&g, &x| {
                        if x > T::zero() {
                            g
                        } else {
                            T::zero()
                        }
                    });
                    accumulate(&mut grads, *a, d);
                }
                Op::Sigmoid(a) => {
                    let d = ndarray::Zip::from(&g)
                        .and(&nodes[id].value)
                        .map_collect(|&g, &s| g * s * (T::one() - s));
                    accumulate(&mut grads, *a, d);
                }
                Op::Tanh(a) => {
                    let d = ndarray::Zip::from(&g)
                        .and(&nodes[id].value)
                        .map_collect(|&g, &t| g * (T::one() - t * t));
                    accumulate(&mut grads, *a, d);
                }
                Op::Square(a) => {
                    let two = T::one() + T::one();
                    let d = ndarray::Zip::from(&g)
                        .and(value(*a))
                        .map_collect(|&g, &x| g * two * x);
                    accumulate(&mut grads, *a, d);
                }
                Op::Sum(a) => {
                    let s = g.iter().next().copied().unwrap_or_else(T::zero);
                    accumulate(&mut grads, *a, ArrayD::from_elem(value(*a).raw_dim(), s));
                }
                Op::Mean(a) => {
                    let n = T::from(value(*a).len().max(1)).unwrap_or_else(T::one);
                    let s = g.iter().next().copied().unwrap_or_else(T::zero) / n;
                    accumulate(&mut grads, *a, ArrayD::from_elem(value(*a).raw_dim(), s));
                }
                Op::Reshape(a) => {
                    let shape = value(*a).raw_dim();
                    let g = g
                        .as_standard_layout()
                        .into_owned()
                        .into_shape_with_order(shape)
                        .map_err(|e| shape_error("reshape", e.to_string()))?;
                    accumulate(&mut grads, *a, g);
                }
                Op::Permute(a, axes) => {
                    let mut inverse = vec![0; axes.len()];
                    for (i, &ax) in axes.iter().enumerate() {
                        inverse[ax] = i;
                    }
                    accumulate(
                        &mut grads,
                        *a,
                        g.view()
                            .permuted_axes(IxDyn(&inverse))
                            .as_standard_layout()
                            .into_owned(),
                    );
                }
                Op::Conv(x, w, p) => {
                    let g4 = four(&g, "gradient")?;
                    let (xv, wv) = (four(value(*x), "input")?, four(value(*w), "filter")?);
                    accumulate(
                        &mut grads,
                        *x,
                        conv::backward_data(p, g4.view(), wv.view())?.into_dyn(),
                    );
                    accumulate(
                        &mut grads,
                        *w,
                        conv::backward_filter(p, xv.view(), g4.view())?.into_dyn(),
                    );
                }
                Op::ConvTranspose(u, w, p) => {
                    let g4 = four(&g, "gradient")?;
                    let (uv, wv) = (four(value(*u), "input")?, four(value(*w), "filter")?);
                    accumulate(
                        &mut grads,
                        *u,
                        conv::forward(p, g4.view(), wv.view())?.into_dyn(),
                    );
                    accumulate(
                        &mut grads,
                        *w,
                        conv::backward_filter(p, g4.view(), uv.view())?.into_dyn(),
                    );
                }
                Op::FilterGrad(x, u, p) => {
                    let g4 = four(&g, "gradient")?;
                    let (xv, uv) = (four(value(*x), "input")?, four(value(*u), "out_backprop")?);
                    accumulate(
                        &mut grads,
                        *x,
                        conv::backward_data(p, uv.view(), g4.view())?.into_dyn(),
                    );
                    accumulate(
                        &mut grads,
                        *u,
                        conv::forward(p, xv.view(), g4.view())?.into_dyn(),
                    );
                }
            }
            grads[id] = Some(g);
        }
        Ok(Gradients { grads })
    }
}

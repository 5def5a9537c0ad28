//! Trainable layers on the autodiff tape, and optimisers.
//!
//! Data are NHWC. [`Conv2d`] and [`Conv2dTranspose`] build their [`Problem`] from the
//! input shape with the same size rules as every other entry point (the transposed layer
//! follows PyTorch's `padding` / `output_padding`), so a layer computes exactly what the
//! functional ops compute.
//!
//! ```
//! use convt::autodiff::Tape;
//! use convt::nn::{Adam, Conv2dTranspose, Init, Optimizer};
//! use ndarray::ArrayD;
//! // Learn to map a constant 2x2 image to a 4x4 one of twice the value.
//! let mut up = Conv2dTranspose::new(1, 1, [2, 2]).stride(2).init(Init::Constant(0.1), 0);
//! let mut adam = Adam::new(0.05);
//! let x = ArrayD::<f32>::ones(vec![1, 2, 2, 1]);
//! let target = ArrayD::<f32>::from_elem(vec![1, 4, 4, 1], 2.0);
//! for _ in 0..200 {
//!     let tape = Tape::new();
//!     let input = tape.leaf(x.clone());
//!     let y = up.forward(&tape, input).unwrap();
//!     let t = tape.leaf(target.clone());
//!     let loss = tape.mean(tape.square(tape.sub(y, t).unwrap()));
//!     let grads = tape.backward(loss).unwrap();
//!     adam.step(&mut up.parameters(), &grads);
//! }
//! assert!((up.weight.value[[0, 0, 0, 0]] + up.bias.as_ref().unwrap().value[0] - 2.0).abs() < 0.05);
//! ```

use crate::autodiff::{Gradients, Tape, Var};
use crate::element::Element;
use crate::error::{ConvError, Result};
use crate::problem::{Axis, AxisPadding, Problem, Taps, TransposedWindow};
use ndarray::{ArrayD, IxDyn};
use rand::{RngExt, SeedableRng};
use std::cell::Cell;

/// A trainable array, bound to a tape variable during a step.
#[derive(Debug, Clone)]
pub struct Parameter<T> {
    /// The current value.
    pub value: ArrayD<T>,
    var: Cell<Option<Var>>,
}

impl<T: Element> Parameter<T> {
    /// A parameter with an initial value.
    pub fn new(value: ArrayD<T>) -> Parameter<T> {
        Parameter {
            value,
            var: Cell::new(None),
        }
    }

    /// Puts the current value on `tape` and remembers the variable for the optimiser.
    pub fn bind(&self, tape: &Tape<T>) -> Var {
        let v = tape.leaf(self.value.clone());
        self.var.set(Some(v));
        v
    }
}

/// How weights start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// Every weight the same value.
    Constant(f64),
    /// Uniform in `±sqrt(6 / fan_in)` (He / Kaiming, for ReLU networks).
    HeUniform,
    /// Uniform in `±sqrt(6 / (fan_in + fan_out))` (Glorot / Xavier).
    GlorotUniform,
    /// The bilinear-interpolation kernel on matching channels (transposed layers: starts
    /// as bilinear upsampling, as in FCN).
    Bilinear,
}

fn initial<T: Element>(
    init: Init,
    shape: [usize; 4],
    fan_in: usize,
    fan_out: usize,
    seed: u64,
) -> ArrayD<T> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let uniform = |bound: f64, rng: &mut rand::rngs::StdRng| {
        ArrayD::from_shape_fn(IxDyn(&shape), |_| {
            T::from(rng.random_range(-bound..=bound)).unwrap_or_else(T::zero)
        })
    };
    match init {
        Init::Zeros => ArrayD::zeros(IxDyn(&shape)),
        Init::Constant(c) => ArrayD::from_elem(IxDyn(&shape), T::from(c).unwrap_or_else(T::zero)),
        Init::HeUniform => uniform((6.0 / fan_in.max(1) as f64).sqrt(), &mut rng),
        Init::GlorotUniform => uniform((6.0 / (fan_in + fan_out).max(1) as f64).sqrt(), &mut rng),
        Init::Bilinear => {
            // HWIO [kh, kw, ci, co]: weight f(kh) f(kw) where ci == co.
            let tent = |k: usize, n: usize| {
                let factor = n.div_ceil(2) as f64;
                let center = if n % 2 == 1 {
                    factor - 1.0
                } else {
                    factor - 0.5
                };
                1.0 - (k as f64 - center).abs() / factor
            };
            ArrayD::from_shape_fn(IxDyn(&shape), |i| {
                if i[2] == i[3] % shape[2].max(1) {
                    T::from(tent(i[0], shape[0]) * tent(i[1], shape[1])).unwrap_or_else(T::zero)
                } else {
                    T::zero()
                }
            })
        }
    }
}

/// A 2-D convolution layer: `y = conv2d(x, w) + b`, NHWC, weights HWIO.
#[derive(Debug, Clone)]
pub struct Conv2d<T> {
    /// Weights `[kh, kw, in / groups, out]`.
    pub weight: Parameter<T>,
    /// Bias `[out]`, if any.
    pub bias: Option<Parameter<T>>,
    /// Strides `[h, w]`.
    pub strides: [usize; 2],
    /// Padding of both axes.
    pub padding: AxisPadding,
    /// Dilations `[h, w]`.
    pub dilations: [usize; 2],
    /// Channel groups.
    pub groups: usize,
}

impl<T: Element> Conv2d<T> {
    /// `in_channels -> out_channels` with a `kernel` of `[kh, kw]`: stride 1, SAME
    /// padding, one group, a zero bias, He-uniform weights (seed 0).
    pub fn new(in_channels: usize, out_channels: usize, kernel: [usize; 2]) -> Conv2d<T> {
        let shape = [kernel[0], kernel[1], in_channels, out_channels];
        Conv2d {
            weight: Parameter::new(initial(
                Init::HeUniform,
                shape,
                kernel[0] * kernel[1] * in_channels,
                kernel[0] * kernel[1] * out_channels,
                0,
            )),
            bias: Some(Parameter::new(ArrayD::zeros(IxDyn(&[out_channels])))),
            strides: [1, 1],
            padding: AxisPadding::SameUpper,
            dilations: [1, 1],
            groups: 1,
        }
    }

    /// Sets the stride of both axes.
    pub fn stride(mut self, s: usize) -> Self {
        self.strides = [s, s];
        self
    }

    /// Sets the padding.
    pub fn padding(mut self, padding: AxisPadding) -> Self {
        self.padding = padding;
        self
    }

    /// Sets the dilation of both axes.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilations = [d, d];
        self
    }

    /// Sets the number of groups (re-initialises the weights He-uniform with seed 0).
    pub fn groups(mut self, groups: usize) -> Self {
        let s = self.weight.value.shape().to_vec();
        let g = groups.max(1);
        let shape = [s[0], s[1], s[2] / g, s[3]];
        self.weight = Parameter::new(initial(
            Init::HeUniform,
            shape,
            s[0] * s[1] * shape[2],
            s[0] * s[1] * s[3] / g,
            0,
        ));
        self.groups = g;
        self
    }

    /// With or without a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        let out = self.weight.value.shape()[3];
        self.bias = bias.then(|| Parameter::new(ArrayD::zeros(IxDyn(&[out]))));
        self
    }

    /// Re-initialises the weights.
    pub fn init(mut self, init: Init, seed: u64) -> Self {
        let s = self.weight.value.shape().to_vec();
        let shape = [s[0], s[1], s[2], s[3]];
        self.weight.value = initial(
            init,
            shape,
            s[0] * s[1] * s[2],
            s[0] * s[1] * s[3] / self.groups,
            seed,
        );
        self
    }

    /// The forward problem for an NHWC input shape.
    pub fn problem(&self, input: &[usize]) -> Result<Problem> {
        let [n, h, w, c]: [usize; 4] = input.try_into().map_err(|_| ConvError::Rank {
            arg: "input".into(),
            expected: "4-dimensional NHWC".into(),
            shape: input.to_vec(),
        })?;
        let ws = self.weight.value.shape();
        if c != ws[2] * self.groups {
            return Err(ConvError::Channels {
                arg: "input".into(),
                message: format!("has {c} channels; the layer takes {}", ws[2] * self.groups),
            });
        }
        let height = Axis::forward(
            "height",
            h,
            Taps::new(ws[0], self.strides[0], self.dilations[0]),
            self.padding,
        )?;
        let width = Axis::forward(
            "width",
            w,
            Taps::new(ws[1], self.strides[1], self.dilations[1]),
            self.padding,
        )?;
        Problem::new(n, c, ws[3], self.groups, height, width)
    }

    /// `conv2d(x, w) + b` on the tape.
    pub fn forward(&self, tape: &Tape<T>, x: Var) -> Result<Var> {
        let p = self.problem(tape.value(x).shape())?;
        let y = tape.conv2d(x, self.weight.bind(tape), &p)?;
        match &self.bias {
            Some(b) => tape.bias_add(y, b.bind(tape)),
            None => Ok(y),
        }
    }

    /// The trainable parameters.
    pub fn parameters(&mut self) -> Vec<&mut Parameter<T>> {
        let mut all = vec![&mut self.weight];
        all.extend(self.bias.as_mut());
        all
    }
}

/// A transposed convolution layer (learned upsampling), with PyTorch's `padding` and
/// `output_padding`: `out = (in - 1) * stride - 2 * padding + dilation * (k - 1) +
/// output_padding + 1`. NHWC; weights HWIO of the forward convolution `[kh, kw, out /
/// groups, in]`.
#[derive(Debug, Clone)]
pub struct Conv2dTranspose<T> {
    /// Weights `[kh, kw, out / groups, in]`.
    pub weight: Parameter<T>,
    /// Bias `[out]`, if any.
    pub bias: Option<Parameter<T>>,
    /// Strides `[h, w]`.
    pub strides: [usize; 2],
    /// Rows removed from each side of the full result `[h, w]`.
    pub padding: [usize; 2],
    /// Rows added at the end `[h, w]`.
    pub output_padding: [usize; 2],
    /// Dilations `[h, w]`.
    pub dilations: [usize; 2],
    /// Channel groups.
    pub groups: usize,
}

impl<T: Element> Conv2dTranspose<T> {
    /// `in_channels -> out_channels` with a `kernel` of `[kh, kw]`: stride 1, padding 0,
    /// one group, a zero bias, He-uniform weights (seed 0).
    pub fn new(in_channels: usize, out_channels: usize, kernel: [usize; 2]) -> Conv2dTranspose<T> {
        let shape = [kernel[0], kernel[1], out_channels, in_channels];
        Conv2dTranspose {
            weight: Parameter::new(initial(
                Init::HeUniform,
                shape,
                kernel[0] * kernel[1] * out_channels,
                kernel[0] * kernel[1] * in_channels,
                0,
            )),
            bias: Some(Parameter::new(ArrayD::zeros(IxDyn(&[out_channels])))),
            strides: [1, 1],
            padding: [0, 0],
            output_padding: [0, 0],
            dilations: [1, 1],
            groups: 1,
        }
    }

    /// Sets the stride of both axes.
    pub fn stride(mut self, s: usize) -> Self {
        self.strides = [s, s];
        self
    }

    /// Sets the padding of both axes.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p, p];
        self
    }

    /// Sets the output padding of both axes.
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = [p, p];
        self
    }

    /// Sets the dilation of both axes.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilations = [d, d];
        self
    }

    /// Sets the number of groups (re-initialises the weights He-uniform with seed 0).
    pub fn groups(mut self, groups: usize) -> Self {
        let s = self.weight.value.shape().to_vec();
        let g = groups.max(1);
        let shape = [s[0], s[1], s[2] / g, s[3]];
        self.weight = Parameter::new(initial(
            Init::HeUniform,
            shape,
            s[0] * s[1] * shape[2],
            s[0] * s[1] * s[3],
            0,
        ));
        self.groups = g;
        self
    }

    /// With or without a bias.
    pub fn bias(mut self, bias: bool) -> Self {
        let out = self.weight.value.shape()[2] * self.groups;
        self.bias = bias.then(|| Parameter::new(ArrayD::zeros(IxDyn(&[out]))));
        self
    }

    /// Re-initialises the weights.
    pub fn init(mut self, init: Init, seed: u64) -> Self {
        let s = self.weight.value.shape().to_vec();
        self.weight.value = initial(
            init,
            [s[0], s[1], s[2], s[3]],
            s[0] * s[1] * s[2],
            s[0] * s[1] * s[3],
            seed,
        );
        self
    }

    /// The forward problem (whose input gradient this layer computes) for an NHWC input.
    pub fn problem(&self, input: &[usize]) -> Result<Problem> {
        let [n, h, w, c]: [usize; 4] = input.try_into().map_err(|_| ConvError::Rank {
            arg: "input".into(),
            expected: "4-dimensional NHWC".into(),
            shape: input.to_vec(),
        })?;
        let ws = self.weight.value.shape();
        if c != ws[3] {
            return Err(ConvError::Channels {
                arg: "input".into(),
                message: format!("has {c} channels; the layer takes {}", ws[3]),
            });
        }
        let axis = |a: usize, name: &str, size: usize, k: usize| {
            let window = TransposedWindow::Torch {
                padding: self.padding[a],
                output_padding: self.output_padding[a],
            };
            Axis::transposed_window(
                name,
                size,
                Taps::new(k, self.strides[a], self.dilations[a]),
                window,
            )
        };
        Problem::new(
            n,
            ws[2] * self.groups,
            c,
            self.groups,
            axis(0, "height", h, ws[0])?,
            axis(1, "width", w, ws[1])?,
        )
    }

    /// `conv2d_transpose(x, w) + b` on the tape.
    pub fn forward(&self, tape: &Tape<T>, x: Var) -> Result<Var> {
        let p = self.problem(tape.value(x).shape())?;
        let y = tape.conv2d_transpose(x, self.weight.bind(tape), &p)?;
        match &self.bias {
            Some(b) => tape.bias_add(y, b.bind(tape)),
            None => Ok(y),
        }
    }

    /// The trainable parameters.
    pub fn parameters(&mut self) -> Vec<&mut Parameter<T>> {
        let mut all = vec![&mut self.weight];
        all.extend(self.bias.as_mut());
        all
    }
}

/// Updates parameters from the gradients of the step that bound them.
pub trait Optimizer<T> {
    /// One update of every parameter in `params` (the same list, in the same order, at
    /// every step).
    fn step(&mut self, params: &mut [&mut Parameter<T>], grads: &Gradients<T>);
}

fn grad_of<'a, T: Element>(p: &Parameter<T>, grads: &'a Gradients<T>) -> Option<&'a ArrayD<T>> {
    p.var.get().and_then(|v| grads.get(v))
}

/// Stochastic gradient descent with momentum: `v = momentum * v + g; w -= lr * v`.
#[derive(Debug, Clone)]
pub struct Sgd<T> {
    /// Learning rate.
    pub learning_rate: f64,
    /// Momentum (0 for plain SGD).
    pub momentum: f64,
    velocity: Vec<ArrayD<T>>,
}

impl<T: Element> Sgd<T> {
    /// SGD with a learning rate and momentum.
    pub fn new(learning_rate: f64, momentum: f64) -> Sgd<T> {
        Sgd {
            learning_rate,
            momentum,
            velocity: vec![],
        }
    }
}

impl<T: Element> Optimizer<T> for Sgd<T> {
    fn step(&mut self, params: &mut [&mut Parameter<T>], grads: &Gradients<T>) {
        let (lr, mu) = (
            T::from(self.learning_rate).unwrap_or_else(T::zero),
            T::from(self.momentum).unwrap_or_else(T::zero),
        );
        for (i, p) in params.iter_mut().enumerate() {
            if self.velocity.len() <= i {
                self.velocity.push(ArrayD::zeros(p.value.raw_dim()));
            }
            let Some(g) = grad_of(p, grads) else { continue };
            let v = &mut self.velocity[i];
            ndarray::Zip::from(&mut *v)
                .and(g)
                .for_each(|v, &g| *v = mu * *v + g);
            ndarray::Zip::from(&mut p.value)
                .and(&*v)
                .for_each(|w, &v| *w = *w - lr * v);
        }
    }
}

/// Adam (Kingma and Ba, 2015) with bias correction.
#[derive(Debug, Clone)]
pub struct Adam<T> {
    /// Learning rate.
    pub learning_rate: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub epsilon: f64,
    steps: i32,
    first: Vec<ArrayD<T>>,
    second: Vec<ArrayD<T>>,
}

impl<T: Element> Adam<T> {
    /// Adam with the usual defaults (0.9, 0.999, 1e-8).
    pub fn new(learning_rate: f64) -> Adam<T> {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            steps: 0,
            first: vec![],
            second: vec![],
        }
    }
}

impl<T: Element> Optimizer<T> for Adam<T> {
    fn step(&mut self, params: &mut [&mut Parameter<T>], grads: &Gradients<T>) {
        self.steps += 1;
        let c = |v: f64| T::from(v).unwrap_or_else(T::zero);
        let (b1, b2) = (c(self.beta1), c(self.beta2));
        let lr = c(
            self.learning_rate * (1.0 - self.beta2.powi(self.steps)).sqrt()
                / (1.0 - self.beta1.powi(self.steps)),
        );
        let eps = c(self.epsilon);
        for (i, p) in params.iter_mut().enumerate() {
            if self.first.len() <= i {
                self.first.push(ArrayD::zeros(p.value.raw_dim()));
                self.second.push(ArrayD::zeros(p.value.raw_dim()));
            }
            let Some(g) = grad_of(p, grads) else { continue };
            ndarray::Zip::from(&mut p.value)
                .and(&mut self.first[i])
                .and(&mut self.second[i])
                .and(g)
                .for_each(|w, m, v, &g| {
                    *m = b1 * *m + (T::one() - b1) * g;
                    *v = b2 * *v + (T::one() - b2) * g * g;
                    *w = *w - lr * *m / (v.sqrt() + eps);
                });
        }
    }
}

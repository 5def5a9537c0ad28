//! Layers compute what the functional ops compute, and both optimisers train them.

use convt::autodiff::Tape;
use convt::bench::Xorshift;
use convt::nn::{Adam, Conv2d, Conv2dTranspose, Init, Optimizer, Sgd};
use convt::problem::AxisPadding;
use convt::{tf, torch};
use ndarray::{Array4, ArrayD, IxDyn};

fn data(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut rng = Xorshift::new(seed);
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        (rng.next_u64() % 1000) as f64 / 500.0 - 1.0
    })
}

#[test]
fn conv2d_layer_equals_tf_conv2d_plus_bias() {
    let layer = Conv2d::<f64>::new(4, 6, [3, 2])
        .stride(2)
        .dilation(2)
        .groups(2)
        .init(Init::GlorotUniform, 3)
        .padding(AxisPadding::SameUpper);
    let x = data(&[2, 9, 8, 4], 1);
    let tape = Tape::new();
    let xv = tape.leaf(x.clone());
    let y = tape.value(layer.forward(&tape, xv).unwrap());
    let w = layer.weight.value.clone().into_dimensionality().unwrap();
    let opts = tf::Options::new(tf::Padding::Same).strides(2).dilations(2);
    let expected = tf::conv2d(x.into_dimensionality().unwrap().view(), w.view(), &opts).unwrap();
    assert_eq!(y, expected.into_dyn());
}

#[test]
fn conv2d_transpose_layer_equals_torch_conv_transpose2d() {
    let mut layer = Conv2dTranspose::<f64>::new(4, 6, [3, 3])
        .stride(2)
        .padding(1)
        .output_padding(1)
        .groups(2)
        .init(Init::HeUniform, 4);
    layer.bias.as_mut().unwrap().value = data(&[6], 9);
    let x = data(&[1, 5, 4, 4], 2);
    let tape = Tape::new();
    let xv = tape.leaf(x.clone());
    let y = tape.value(layer.forward(&tape, xv).unwrap());
    assert_eq!(y.shape(), &[1, 10, 8, 6]);
    // The same weights in PyTorch's layout: HWIO [kh, kw, out/g, in] -> IOHW [in, out/g, kh, kw].
    let w: Array4<f64> = layer.weight.value.clone().into_dimensionality().unwrap();
    let w_iohw = w.view().permuted_axes([3, 2, 0, 1]).to_owned();
    let x_nchw: Array4<f64> = x
        .into_dimensionality::<ndarray::Ix4>()
        .unwrap()
        .permuted_axes([0, 3, 1, 2])
        .to_owned();
    let bias = layer
        .bias
        .as_ref()
        .unwrap()
        .value
        .clone()
        .into_dimensionality()
        .unwrap();
    let opts = torch::TransposeOptions::new()
        .stride(2)
        .padding(1)
        .output_padding(1)
        .groups(2);
    let expected =
        torch::conv_transpose2d(x_nchw.view(), w_iohw.view(), Some(bias.view()), &opts).unwrap();
    let y_nchw = y
        .into_dimensionality::<ndarray::Ix4>()
        .unwrap()
        .permuted_axes([0, 3, 1, 2])
        .to_owned();
    assert!(y_nchw
        .iter()
        .zip(&expected)
        .all(|(a, b)| (a - b).abs() < 1e-12));
}

/// Regression onto a fixed "teacher" kernel: both optimisers recover it.
fn recovers_teacher(optimizer: &mut dyn Optimizer<f64>, steps: usize) -> f64 {
    let teacher = Conv2d::<f64>::new(2, 3, [3, 3])
        .init(Init::GlorotUniform, 42)
        .bias(false);
    let mut student = Conv2d::<f64>::new(2, 3, [3, 3])
        .init(Init::Zeros, 0)
        .bias(false);
    for step in 0..steps {
        let x = data(&[4, 6, 6, 2], step as u64 + 100);
        let tape = Tape::new();
        let xv = tape.leaf(x.clone());
        let target = tape.value(teacher.forward(&tape, xv).unwrap());
        let t = tape.leaf(target);
        let y = student.forward(&tape, xv).unwrap();
        let loss = tape.mean(tape.square(tape.sub(y, t).unwrap()));
        let grads = tape.backward(loss).unwrap();
        optimizer.step(&mut student.parameters(), &grads);
    }
    (&student.weight.value - &teacher.weight.value)
        .iter()
        .map(|v| v.abs())
        .fold(0.0, f64::max)
}

#[test]
fn sgd_with_momentum_recovers_a_teacher_kernel() {
    let error = recovers_teacher(&mut Sgd::new(0.5, 0.9), 300);
    assert!(error < 1e-3, "max weight error {error}");
}

#[test]
fn adam_recovers_a_teacher_kernel() {
    let error = recovers_teacher(&mut Adam::new(0.02), 600);
    assert!(error < 1e-3, "max weight error {error}");
}

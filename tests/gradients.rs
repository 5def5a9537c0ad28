//! Every differentiable argument of every tape op against central finite differences in
//! f64, on random small geometries (strides, padding, dilation, groups, both layouts).

use convt::autodiff::{Tape, Var};
use convt::bench::Xorshift;
use convt::tf;
use convt::Problem;
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

fn random(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut rng = Xorshift::new(seed);
    ArrayD::from_shape_fn(IxDyn(shape), |_| {
        let state = rng.next_u64();
        // Uniform in [-1, 1], kept away from 0 so relu has no kink nearby.
        let u = (state % 10_000) as f64 / 5_000.0 - 1.0;
        if u.abs() < 0.05 {
            0.3
        } else {
            u
        }
    })
}

type Build = dyn Fn(&Tape<f64>, &[Var]) -> convt::Result<Var>;

/// A named op under test and its inputs.
type Case = (&'static str, Box<Build>, Vec<ArrayD<f64>>);

/// `loss = sum(weights * f(inputs))`; returns the largest relative error over the checked
/// elements of every input.
fn check(f: &Build, inputs: &[ArrayD<f64>], seed: u64) -> f64 {
    let loss_of = |values: &[ArrayD<f64>]| -> (f64, Tape<f64>, Vec<Var>, Var) {
        let tape = Tape::new();
        let vars: Vec<Var> = values.iter().map(|v| tape.leaf(v.clone())).collect();
        let out = f(&tape, &vars).unwrap();
        let weights = tape.leaf(random(tape.value(out).shape(), seed ^ 0xabc));
        let loss = tape.sum(tape.mul(out, weights).unwrap());
        let l = tape.value(loss).iter().next().copied().unwrap();
        (l, tape, vars, loss)
    };
    let (_, tape, vars, loss) = loss_of(inputs);
    let grads = tape.backward(loss).unwrap();
    let eps = 1e-6;
    let mut worst: f64 = 0.0;
    for (k, input) in inputs.iter().enumerate() {
        let analytic = grads
            .get(vars[k])
            .cloned()
            .unwrap_or_else(|| ArrayD::zeros(input.raw_dim()));
        assert_eq!(analytic.shape(), input.shape());
        let n = input.len();
        let step = (n / 40).max(1);
        for i in (0..n).step_by(step) {
            let mut plus = inputs.to_vec();
            plus[k].as_slice_mut().unwrap()[i] += eps;
            let mut minus = inputs.to_vec();
            minus[k].as_slice_mut().unwrap()[i] -= eps;
            let numeric = (loss_of(&plus).0 - loss_of(&minus).0) / (2.0 * eps);
            let a = analytic.as_standard_layout().as_slice().unwrap()[i];
            worst = worst.max((a - numeric).abs() / numeric.abs().max(1.0));
        }
    }
    worst
}

const TOLERANCE: f64 = 1e-6;

#[test]
fn elementwise_and_shape_ops() {
    let a = random(&[2, 3, 4, 5], 1);
    let b = random(&[2, 3, 4, 5], 2);
    let bias = random(&[5], 3);
    let cases: Vec<Case> = vec![
        (
            "add",
            Box::new(|t, v| t.add(v[0], v[1])),
            vec![a.clone(), b.clone()],
        ),
        (
            "sub",
            Box::new(|t, v| t.sub(v[0], v[1])),
            vec![a.clone(), b.clone()],
        ),
        (
            "mul",
            Box::new(|t, v| t.mul(v[0], v[1])),
            vec![a.clone(), b.clone()],
        ),
        (
            "scale",
            Box::new(|t, v| Ok(t.scale(v[0], -2.5))),
            vec![a.clone()],
        ),
        (
            "bias_add",
            Box::new(|t, v| t.bias_add(v[0], v[1])),
            vec![a.clone(), bias],
        ),
        ("relu", Box::new(|t, v| Ok(t.relu(v[0]))), vec![a.clone()]),
        (
            "sigmoid",
            Box::new(|t, v| Ok(t.sigmoid(v[0]))),
            vec![a.clone()],
        ),
        ("tanh", Box::new(|t, v| Ok(t.tanh(v[0]))), vec![a.clone()]),
        (
            "square",
            Box::new(|t, v| Ok(t.square(v[0]))),
            vec![a.clone()],
        ),
        ("sum", Box::new(|t, v| Ok(t.sum(v[0]))), vec![a.clone()]),
        ("mean", Box::new(|t, v| Ok(t.mean(v[0]))), vec![a.clone()]),
        (
            "reshape",
            Box::new(|t, v| t.reshape(v[0], &[6, 20])),
            vec![a.clone()],
        ),
        (
            "permute",
            Box::new(|t, v| t.permute(v[0], &[0, 3, 1, 2])),
            vec![a.clone()],
        ),
    ];
    for (name, f, inputs) in cases {
        let err = check(f.as_ref(), &inputs, 9);
        assert!(err < TOLERANCE, "{name}: relative error {err}");
    }
}

fn padding(mode: usize, pads: [i64; 4]) -> tf::Padding {
    match mode {
        0 => tf::Padding::Valid,
        1 => tf::Padding::Same,
        _ => tf::Padding::Explicit(vec![[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]]),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]
    /// conv2d, conv2d_transpose and backprop_filter, each argument, with the data in NHWC
    /// or in NCHW (permuted on the tape).
    #[test]
    fn convolution_ops(
        hw in [2usize..7, 2usize..7], k in [1usize..4, 1usize..4], s in [1i64..3, 1i64..3], d in [1i64..3, 1i64..3],
        mode in 0usize..3, pads in [0i64..2, 0i64..2, 0i64..2, 0i64..2], groups in 1usize..3, cg in 1usize..3, og in 1usize..3,
        nchw in any::<bool>(), seed in any::<u64>(),
    ) {
        let opts = tf::Options::new(padding(mode, pads)).strides(s).dilations(d);
        let x_shape = [2, hw[0] + 2, hw[1] + 2, cg * groups];
        let w_shape = [k[0], k[1], cg, og * groups];
        let Ok(p) = tf::conv2d_problem(&x_shape, &w_shape, &opts) else { return Ok(()) };
        let to_layout = |a: [usize; 4]| if nchw { vec![a[0], a[3], a[1], a[2]] } else { a.to_vec() };
        let data = move |t: &Tape<f64>, v: Var| if nchw { t.permute(v, &[0, 2, 3, 1]) } else { Ok(v) };
        let back = move |t: &Tape<f64>, v: Var| if nchw { t.permute(v, &[0, 3, 1, 2]) } else { Ok(v) };
        let x = random(&to_layout(x_shape), seed);
        let w = random(&w_shape, seed ^ 1);
        let u = random(&to_layout(p.output_shape()), seed ^ 2);
        let conv = move |t: &Tape<f64>, v: &[Var]| { let y = t.conv2d(data(t, v[0])?, v[1], &p)?; back(t, y) };
        let transpose = move |t: &Tape<f64>, v: &[Var]| { let y = t.conv2d_transpose(data(t, v[0])?, v[1], &p)?; back(t, y) };
        let filter = move |t: &Tape<f64>, v: &[Var]| t.conv2d_backprop_filter(data(t, v[0])?, data(t, v[1])?, &p);
        let _: &Problem = &p;
        let e1 = check(&conv, &[x.clone(), w.clone()], seed);
        prop_assert!(e1 < TOLERANCE, "conv2d: {}", e1);
        let e2 = check(&transpose, &[u.clone(), w.clone()], seed);
        prop_assert!(e2 < TOLERANCE, "conv2d_transpose: {}", e2);
        let e3 = check(&filter, &[x, u], seed);
        prop_assert!(e3 < TOLERANCE, "backprop_filter: {}", e3);
    }
}

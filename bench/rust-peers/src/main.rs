//! Times the layers of convt's benchmark suite in the Rust peers and in convt, in the same
//! run (same shapes as `bench/bench_peers.py`, NCHW as these crates take it), medians in
//! ms; ratio = best Rust peer's time / convt's time (> 1: convt is faster), for convt on
//! its canonical NHWC layout and through its NCHW (PyTorch) front:
//!
//! ```sh
//! python3 bench/bench_peers.py onnx-files /tmp/convt-onnx   # models for tract (needs onnx)
//! cargo run --release -- THREADS /tmp/convt-onnx
//! ```
//!
//! candle and burn-flex run on a rayon pool of THREADS threads (candle also reads
//! RAYON_NUM_THREADS, which `bench/rust-peers/run.sh` sets); tract runs single-threaded.

use std::time::Instant;

use burn_backend::ops::{ConvOptions, ConvTransposeOptions, FloatTensorOps, ModuleOps};
use burn_backend::TensorData;
use burn_flex::{Flex, FlexDevice};

/// name, kind, N, H, W, Cin, Cout, k, stride, pad, out side (transposed: H, W small side).
const SUITE: [(&str, char, [usize; 9]); 10] = [
    ("T1-seed", 'T', [1, 3, 3, 1, 1, 2, 2, 0, 6]),
    ("T2-unet-up", 'T', [1, 64, 64, 128, 64, 2, 2, 0, 128]),
    ("T3-unet-deep", 'T', [1, 32, 32, 256, 128, 2, 2, 0, 64]),
    ("T4-dcgan", 'T', [16, 16, 16, 128, 64, 4, 2, 1, 32]),
    ("T5-dcgan-rgb", 'T', [16, 32, 32, 64, 3, 4, 2, 1, 64]),
    ("T6-s1-3x3", 'T', [1, 56, 56, 64, 64, 3, 1, 1, 56]),
    ("T7-fcn32", 'T', [1, 16, 16, 21, 21, 64, 32, 16, 512]),
    ("C1-conv3x3", 'C', [1, 56, 56, 64, 64, 3, 1, 1, 56]),
    ("C2-conv3x3-b8", 'C', [8, 28, 28, 128, 128, 3, 1, 1, 28]),
    ("F1-dcgan-dw", 'F', [16, 16, 16, 128, 64, 4, 2, 1, 32]),
];

/// Median seconds of `f` over at least 5 runs and 1 s, after one warm-up.
fn median(mut f: impl FnMut()) -> f64 {
    f();
    let (start, mut times) = (Instant::now(), vec![]);
    while times.len() < 5 || start.elapsed().as_secs_f64() < 1.0 {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn values(len: usize) -> Vec<f32> {
    let mut rng = convt::bench::Xorshift::new(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| (rng.next_u64() % 2000) as f32 / 1000.0 - 1.0)
        .collect()
}

fn flex(shape: [usize; 4]) -> burn_flex::FlexTensor {
    let len = shape.iter().product();
    Flex::float_from_data(TensorData::new(values(len), shape), &FlexDevice)
}

fn burn_flex(kind: char, d: [usize; 9]) -> f64 {
    let [n, h, w, cin, cout, k, s, p, out] = d;
    match kind {
        'T' => {
            let op = out - ((h - 1) * s + k - 2 * p);
            let (x, wt) = (flex([n, cin, h, w]), flex([cin, cout, k, k]));
            let options = ConvTransposeOptions::new([s, s], [p, p], [op, op], [1, 1], 1);
            median(|| {
                drop(Flex::conv_transpose2d(
                    x.clone(),
                    wt.clone(),
                    None,
                    options.clone(),
                ))
            })
        }
        'C' => {
            let (x, wt) = (flex([n, cin, out, out]), flex([cout, cin, k, k]));
            let options = ConvOptions::new([s, s], [p, p], [1, 1], 1);
            median(|| drop(Flex::conv2d(x.clone(), wt.clone(), None, options.clone())))
        }
        _ => {
            // The filter gradient of the forward convolution whose input gradient is T4:
            // x [n, cout, out, out] (T4's output side), dy [n, cin, h, w].
            let (x, wt, dy) = (
                flex([n, cout, out, out]),
                flex([cin, cout, k, k]),
                flex([n, cin, h, w]),
            );
            let options = ConvOptions::new([s, s], [p, p], [1, 1], 1);
            median(|| {
                drop(Flex::conv2d_weight_backward(
                    x.clone(),
                    wt.clone(),
                    dy.clone(),
                    options.clone(),
                ))
            })
        }
    }
}

/// convt's library calls, arrays prepared outside the timing like the peers': on its
/// canonical layout (NHWC data, HWIO filters: no copies) and through PyTorch's NCHW front.
fn convt(kind: char, d: [usize; 9]) -> (f64, f64) {
    use convt::conv;
    use convt::torch::{self, Options, Padding, TransposeOptions};
    use ndarray::Array4;
    let [n, h, w, cin, cout, k, s, p, out] = d;
    let array = |shape: [usize; 4]| {
        Array4::from_shape_vec(shape, values(shape.iter().product())).expect("a shape")
    };
    let (s64, p64) = (s as i64, p as i64);
    match kind {
        'T' => {
            let op = (out - ((h - 1) * s + k - 2 * p)) as i64;
            let (x, wt) = (array([n, cin, h, w]), array([cin, cout, k, k]));
            let options = TransposeOptions {
                stride: vec![s64],
                padding: vec![p64],
                output_padding: vec![op],
                ..TransposeOptions::default()
            };
            let problem = torch::conv_transpose2d_problem(x.shape(), wt.shape(), None, &options)
                .expect("a problem");
            let (dy, filter) = (array(problem.output_shape()), array(problem.filter_shape()));
            (
                median(|| drop(conv::backward_data(&problem, dy.view(), filter.view()))),
                median(|| drop(torch::conv_transpose2d(x.view(), wt.view(), None, &options))),
            )
        }
        'C' => {
            let (x, wt) = (array([n, cin, out, out]), array([cout, cin, k, k]));
            let options = Options {
                stride: vec![s64],
                padding: Padding::Zeros(vec![p64]),
                ..Options::default()
            };
            let problem =
                torch::conv2d_problem(x.shape(), wt.shape(), None, &options).expect("a problem");
            let (xc, filter) = (array(problem.input_shape()), array(problem.filter_shape()));
            (
                median(|| drop(conv::forward(&problem, xc.view(), filter.view()))),
                median(|| drop(torch::conv2d(x.view(), wt.view(), None, &options))),
            )
        }
        _ => {
            use convt::problem::{Axis, AxisPadding, Problem, Taps};
            let padding = AxisPadding::Explicit {
                before: p,
                after: p,
            };
            let axis = Axis::forward("h", out, Taps::new(k, s, 1), padding).expect("an axis");
            let problem = Problem::new(n, cout, cin, 1, axis, axis).expect("a problem");
            let (x, dy) = (array(problem.input_shape()), array(problem.output_shape()));
            // NCHW: the same arrays stored NCHW, through `backward_filter_in`.
            let (xt, dyt) = (
                x.view()
                    .permuted_axes([0, 3, 1, 2])
                    .as_standard_layout()
                    .into_owned(),
                dy.view()
                    .permuted_axes([0, 3, 1, 2])
                    .as_standard_layout()
                    .into_owned(),
            );
            let nchw = convt::layout::DataFormat::Nchw;
            (
                median(|| drop(conv::backward_filter(&problem, x.view(), dy.view()))),
                median(|| {
                    drop(conv::backward_filter_in(
                        nchw,
                        &problem,
                        xt.view(),
                        dyt.view(),
                    ))
                }),
            )
        }
    }
}

fn candle(kind: char, d: [usize; 9]) -> Option<f64> {
    use candle_core::{Device, Tensor};
    let [n, h, w, cin, cout, k, s, p, out] = d;
    let t = |shape: [usize; 4]| {
        let len = shape.iter().product();
        Tensor::from_vec(values(len), &shape, &Device::Cpu).ok()
    };
    match kind {
        'T' => {
            let op = out - ((h - 1) * s + k - 2 * p);
            let (x, wt) = (t([n, cin, h, w])?, t([cin, cout, k, k])?);
            x.conv_transpose2d(&wt, p, op, s, 1).ok()?;
            Some(median(|| drop(x.conv_transpose2d(&wt, p, op, s, 1))))
        }
        'C' => {
            let (x, wt) = (t([n, cin, out, out])?, t([cout, cin, k, k])?);
            x.conv2d(&wt, p, s, 1, 1).ok()?;
            Some(median(|| drop(x.conv2d(&wt, p, s, 1, 1))))
        }
        _ => None, // no filter-gradient op
    }
}

fn tract(kind: char, d: [usize; 9], models: &str) -> Option<f64> {
    use tract_onnx::prelude::*;
    let [n, h, w, cin, _, k, s, p, out] = d;
    let path = format!(
        "{models}/{kind}-{}.onnx",
        d.map(|v| v.to_string()).join("-")
    );
    let model = tract_onnx::onnx()
        .model_for_path(&path)
        .ok()?
        .into_optimized()
        .ok()?
        .into_runnable()
        .ok()?;
    let shape = if kind == 'T' {
        [n, cin, h, w]
    } else {
        [n, cin, out, out]
    };
    let _ = (k, s, p);
    let input = tract_ndarray::Array4::from_shape_vec(shape, values(shape.iter().product()))
        .ok()?
        .into_tensor();
    model.run(tvec!(input.clone().into())).ok()?;
    Some(median(|| drop(model.run(tvec!(input.clone().into())))))
}

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map_or(1, |t| t.parse().expect("THREADS"));
    let models = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "/tmp/convt-onnx".into());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a pool");
    println!("{threads} thread(s); burn-flex 0.22.1, candle 0.11.1, tract 0.23.9 (1 thread)");
    println!(
        "{:<16}{:>8}{:>8}{:>11}{:>10}{:>10}{:>8}{:>8}",
        "layer", "convt", "(NCHW)", "burn-flex", "candle", "tract", "ratio", "(NCHW)"
    );
    let show = |t: Option<f64>| t.map_or("n/a".to_string(), |t| format!("{:.3}", t * 1e3));
    for (name, kind, d) in SUITE {
        let (ours, b, c) = pool.install(|| (convt(kind, d), burn_flex(kind, d), candle(kind, d)));
        let t = if kind == 'F' {
            None
        } else {
            tract(kind, d, &models)
        };
        let best = [Some(b), c, t]
            .into_iter()
            .flatten()
            .fold(f64::INFINITY, f64::min);
        println!(
            "{name:<16}{:>8}{:>8}{:>11}{:>10}{:>10}{:>8.2}{:>8.2}",
            show(Some(ours.0)),
            show(Some(ours.1)),
            show(Some(b)),
            show(c),
            show(t),
            best / ours.0,
            best / ours.1
        );
    }
}

//! f32 error of each plan against the f64 reference on random data in [-1, 1]:
//! `cargo run --release --example accuracy`.

use convt::bench::Xorshift;
use convt::conv::{self, DataPlan, ForwardPlan};
use convt::problem::{Axis, AxisPadding, Problem, Taps};
use convt::reference;
use ndarray::Array4;

fn random(shape: [usize; 4], seed: u64) -> Array4<f64> {
    let mut rng = Xorshift::new(seed);
    Array4::from_shape_fn(shape, |_| (rng.next_u64() % 2000) as f64 / 1000.0 - 1.0)
}

/// Largest error over the largest exact magnitude, in units of f32 epsilon.
fn error(exact: &Array4<f64>, got: &Array4<f32>) -> f64 {
    let scale = exact.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let worst = exact
        .iter()
        .zip(got)
        .fold(0.0f64, |m, (e, g)| m.max((e - *g as f64).abs()));
    worst / scale / f32::EPSILON as f64
}

fn main() {
    for (i, k, s, c, o, pad) in [
        (32, 4, 2, 64, 128, 1),
        (56, 3, 1, 64, 64, 1),
        (28, 3, 1, 128, 128, 1),
        (64, 4, 2, 3, 64, 1),
        (160, 64, 32, 21, 21, 16),
    ] {
        let a = Axis::forward(
            "h",
            i,
            Taps::new(k, s, 1),
            AxisPadding::Explicit {
                before: pad,
                after: pad,
            },
        )
        .unwrap();
        let p = Problem::new(1, c, o, 1, a, a).unwrap();
        let (x, w, dy) = (
            random(p.input_shape(), 1),
            random(p.filter_shape(), 2),
            random(p.output_shape(), 3),
        );
        let f = |a: &Array4<f64>| a.mapv(|v| v as f32);
        print!("i{i} k{k} s{s} c{c} o{o}:");
        if s == 1 {
            let exact = reference::forward(&p, x.view(), w.view()).unwrap();
            for plan in [
                ForwardPlan::Im2col,
                ForwardPlan::Winograd,
                ForwardPlan::Depthwise,
            ] {
                let got = conv::forward_with(plan, &p, f(&x).view(), f(&w).view()).unwrap();
                print!("  forward {plan:?} {:.1}", error(&exact, &got));
            }
        }
        let exact = reference::backward_data(&p, dy.view(), w.view()).unwrap();
        for plan in [DataPlan::Phases, DataPlan::Winograd] {
            let got = conv::backward_data_with(plan, &p, f(&dy).view(), f(&w).view()).unwrap();
            print!("  data {plan:?} {:.1}", error(&exact, &got));
        }
        println!();
    }
}

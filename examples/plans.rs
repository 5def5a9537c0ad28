//! Times every plan of a suite layer's direction, one thread:
//! `cargo run --release --example plans -- T7-fcn32 [THREADS [PLAN]]`.

use convt::bench::{materialise, median_seconds, suite, with_threads};
use convt::call::{self, Arg, Tensor};
use convt::conv::{self, DataPlan, FilterPlan, ForwardPlan};
use convt::problem::Problem;

/// Whether the optional third argument (a plan name) lets `plan` run.
fn wanted(plan: &str) -> bool {
    std::env::args().nth(3).is_none_or(|only| only == plan)
}

fn report(name: &str, p: &Problem, seconds: f64) {
    println!(
        "  {name}: {:.3} ms, {:.1} GFLOP/s",
        seconds * 1e3,
        p.flops() / seconds / 1e9
    );
}

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "T7-fcn32".into());
    let threads: usize = std::env::args()
        .nth(2)
        .map_or(1, |t| t.parse().expect("a thread count"));
    let layer = suite()
        .into_iter()
        .find(|l| l.name == name)
        .expect("a suite layer name, e.g. T7-fcn32");
    let args = materialise(layer.op, &layer.call_args(), false).unwrap();
    let (p, _) = call::problem(layer.op, &args).unwrap();
    let get = |n: &str| match args.get(n) {
        Some(Arg::Tensor(Tensor::F32(a))) => {
            a.clone().into_dimensionality::<ndarray::Ix4>().unwrap()
        }
        _ => panic!("{n} missing"),
    };
    let time = |f: &(dyn Fn() + Sync)| with_threads(threads, || median_seconds(f, 5, 0.5)).unwrap();
    if layer.op == "tf.nn.conv2d" {
        let (x, w) = (get("input"), get("filters"));
        println!("{name}: chosen plan {:?}", ForwardPlan::choose(&p));
        for plan in [
            ForwardPlan::Im2col,
            ForwardPlan::Winograd,
            ForwardPlan::Depthwise,
        ] {
            if !wanted(&format!("{plan:?}")) {
                continue;
            }
            let s = time(&|| drop(conv::forward_with(plan, &p, x.view(), w.view()).unwrap()));
            report(&format!("{plan:?}"), &p, s);
        }
    } else if layer.op == "tf.nn.conv2d_transpose" {
        let (dy, w) = (get("input"), get("filters"));
        println!("{name}: chosen plan {:?}", DataPlan::choose(&p));
        for plan in [
            DataPlan::Phases,
            DataPlan::Col2im,
            DataPlan::PhaseMajor,
            DataPlan::Winograd,
            DataPlan::SubPixel,
            DataPlan::Direct,
            DataPlan::Depthwise,
        ] {
            if !wanted(&format!("{plan:?}")) {
                continue;
            }
            let s =
                time(&|| drop(conv::backward_data_with(plan, &p, dy.view(), w.view()).unwrap()));
            report(&format!("{plan:?}"), &p, s);
        }
    } else {
        let (x, dy) = (get("input"), get("out_backprop"));
        println!("{name}: chosen plan {:?}", FilterPlan::choose(&p));
        for plan in [
            FilterPlan::Im2col,
            FilterPlan::Winograd,
            FilterPlan::Depthwise,
        ] {
            if !wanted(&format!("{plan:?}")) {
                continue;
            }
            let s =
                time(&|| drop(conv::backward_filter_with(plan, &p, x.view(), dy.view()).unwrap()));
            report(&format!("{plan:?}"), &p, s);
        }
    }
}

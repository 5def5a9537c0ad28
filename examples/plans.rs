//! Times every backward-data plan on a suite layer, one thread:
//! `cargo run --release --example plans -- T7-fcn32`.

use convt::bench::{materialise, median_seconds, suite, with_threads};
use convt::call::{self, Arg, Tensor};
use convt::conv::{self, DataPlan};

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "T7-fcn32".into());
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
    let (dy, w) = (get("input"), get("filters"));
    println!("{name}: chosen plan {:?}", DataPlan::choose(&p));
    for plan in [DataPlan::Phases, DataPlan::Col2im, DataPlan::PhaseMajor] {
        let s = with_threads(1, || {
            median_seconds(
                || drop(conv::backward_data_with(plan, &p, dy.view(), w.view()).unwrap()),
                3,
                0.5,
            )
        })
        .unwrap();
        println!(
            "  {plan:?}: {:.3} ms, {:.1} GFLOP/s",
            s * 1e3,
            p.flops() / s / 1e9
        );
    }
}

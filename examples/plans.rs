//! Times every plan of a suite layer's direction on NHWC and on NCHW data (the filter
//! HWIO in both), one thread unless told:
//! `cargo run --release --example plans -- T7-fcn32 [THREADS [PLAN]]`.

use convt::bench::{materialise, median_seconds, suite, with_threads};
use convt::call::{self, Arg, Tensor};
use convt::conv::{self, DataPlan, FilterPlan, ForwardPlan};
use convt::layout::DataFormat;
use convt::problem::Problem;
use ndarray::Array4;

/// Whether the optional third argument (a plan name) lets `plan` run.
fn wanted(plan: &str) -> bool {
    std::env::args().nth(3).is_none_or(|only| only == plan)
}

fn report(name: &str, p: &Problem, [nhwc, nchw]: [f64; 2]) {
    println!(
        "  {name}: NHWC {:.3} ms ({:.1} GFLOP/s), NCHW {:.3} ms ({:.1} GFLOP/s)",
        nhwc * 1e3,
        p.flops() / nhwc / 1e9,
        nchw * 1e3,
        p.flops() / nchw / 1e9
    );
}

/// An NHWC array's NCHW copy.
fn nchw(a: &Array4<f32>) -> Array4<f32> {
    a.view()
        .permuted_axes([0, 3, 1, 2])
        .as_standard_layout()
        .into_owned()
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
            ForwardPlan::FewChannels,
        ] {
            if !wanted(&format!("{plan:?}")) {
                continue;
            }
            let run = |format, x: &Array4<f32>| {
                time(&|| drop(conv::forward_in_with(plan, format, &p, x.view(), w.view()).unwrap()))
            };
            let seconds = [run(DataFormat::Nhwc, &x), run(DataFormat::Nchw, &nchw(&x))];
            report(&format!("{plan:?}"), &p, seconds);
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
            DataPlan::FewChannels,
            DataPlan::Tiles,
        ] {
            if !wanted(&format!("{plan:?}")) {
                continue;
            }
            let run = |format, dy: &Array4<f32>| {
                time(&|| {
                    drop(
                        conv::backward_data_in_with(plan, format, &p, dy.view(), w.view()).unwrap(),
                    )
                })
            };
            let seconds = [
                run(DataFormat::Nhwc, &dy),
                run(DataFormat::Nchw, &nchw(&dy)),
            ];
            report(&format!("{plan:?}"), &p, seconds);
        }
    } else {
        let (x, dy) = (get("input"), get("out_backprop"));
        println!("{name}: chosen plan {:?}", FilterPlan::choose(&p));
        for plan in [
            FilterPlan::Im2col,
            FilterPlan::Winograd,
            FilterPlan::Depthwise,
            FilterPlan::FewChannels,
        ] {
            if !wanted(&format!("{plan:?}")) {
                continue;
            }
            let run = |format, x: &Array4<f32>, dy: &Array4<f32>| {
                time(&|| {
                    drop(
                        conv::backward_filter_in_with(plan, format, &p, x.view(), dy.view())
                            .unwrap(),
                    )
                })
            };
            let seconds = [
                run(DataFormat::Nhwc, &x, &dy),
                run(DataFormat::Nchw, &nchw(&x), &nchw(&dy)),
            ];
            report(&format!("{plan:?}"), &p, seconds);
        }
    }
}

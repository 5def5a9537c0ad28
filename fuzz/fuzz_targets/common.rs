//! Shared by the fuzz targets: run a call and compare it with the reference loops.

use convt::call::{self, Args, Tensor};

/// Largest array (elements) a fuzz case may compute with.
pub const SMALL: usize = 4096;

/// For a call whose arrays are `NAME_shape` stand-ins: `problem` must give an `Err` or a
/// valid problem; small problems are computed with random data and must equal the
/// reference (to f64 rounding).
pub fn check(op: &str, args: &Args) {
    let Ok((p, _)) = call::problem(op, args) else {
        return;
    };
    let sizes = [p.input_shape(), p.output_shape(), p.filter_shape()];
    if sizes.iter().any(|s| s.iter().product::<usize>() > SMALL) {
        return;
    }
    let Ok(full) = convt::bench::materialise(op, args, true) else {
        return;
    };
    let got = call::run(op, &full).expect("a valid problem computes");
    let layout = convt::translate::output_layout(op, &full).unwrap();
    let Tensor::F64(got) = got else {
        panic!("f64 in, f64 out")
    };
    let perm: &[usize] = if layout == convt::translate::Layout::Nchw {
        &[0, 2, 3, 1]
    } else {
        &[0, 1, 2, 3]
    };
    let got = got.permuted_axes(ndarray_dyn(perm));
    let expected =
        convt::reference::call(op, &full).expect("the reference computes what run computes");
    assert_eq!(got.shape(), expected.shape());
    for (a, b) in got.iter().zip(expected.iter()) {
        assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{op}: {a} vs {b}");
    }
}

fn ndarray_dyn(perm: &[usize]) -> convt::ndarray::IxDyn {
    convt::ndarray::IxDyn(perm)
}

//! NaN and Inf propagate exactly as far as the definition says, f32 errors are bounded,
//! and damaged or unusual `.npy` files are read or refused with a clear error.

use convt::bench::Xorshift;
use convt::call::Tensor;
use convt::conv::{self, DataPlan, FilterPlan, ForwardPlan};
use convt::problem::{Axis, AxisPadding, Problem, Taps};
use convt::reference;
use ndarray::Array4;
use proptest::prelude::*;
use std::path::PathBuf;

fn random(shape: [usize; 4], seed: u64) -> Array4<f64> {
    let mut rng = Xorshift::new(seed);
    Array4::from_shape_fn(shape, |_| (rng.next_u64() % 2000) as f64 / 1000.0 - 1.0)
}

/// A problem with one axis shape `(input, kernel, stride, dilation, pad before, pad
/// after)` for both axes, `c` input and `o` output channels.
fn problem(
    axis: (usize, usize, usize, usize, usize, usize),
    c: usize,
    o: usize,
) -> Option<Problem> {
    let (i, k, s, d, pb, pa) = axis;
    let a = Axis::forward(
        "h",
        i,
        Taps::new(k, s, d),
        AxisPadding::Explicit {
            before: pb,
            after: pa,
        },
    )
    .ok()?;
    Problem::new(2, c, o, 1, a, a).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]
    /// One NaN (or Inf) input element makes exactly the outputs connected to it non-finite,
    /// in every direction and plan: the connection pattern comes from the reference with
    /// positive data (taps that land in the padding of a transposed call are dropped, as
    /// every framework drops them).
    #[test]
    fn non_finite_values_reach_exactly_the_connected_outputs(
        i in 3usize..9, k in 1usize..4, s in 1usize..3, d in 1usize..3, pb in 0usize..2, pa in 0usize..2,
        c in 1usize..20, o in 1usize..20, at in any::<prop::sample::Index>(), inf in any::<bool>(), seed in any::<u64>(),
    ) {
        let Some(p) = problem((i, k, s, d, pb, pa), c, o) else { return Ok(()) };
        let bad = if inf { f64::INFINITY } else { f64::NAN };
        let w = random(p.filter_shape(), seed);
        let ones_w = Array4::from_elem(p.filter_shape(), 1.0);
        // Forward: poison x.
        let mut x = random(p.input_shape(), seed ^ 1);
        let mut marker = Array4::zeros(p.input_shape());
        let idx = at.index(x.len());
        x.as_slice_mut().unwrap()[idx] = bad;
        marker.as_slice_mut().unwrap()[idx] = 1.0;
        let touched = reference::forward(&p, marker.view(), ones_w.view()).unwrap();
        for plan in [ForwardPlan::Im2col, ForwardPlan::Winograd, ForwardPlan::Depthwise] {
            let y = conv::forward_with(plan, &p, x.view(), w.view()).unwrap();
            for (v, t) in y.iter().zip(&touched) {
                prop_assert_eq!(!v.is_finite(), *t != 0.0, "{:?}", plan);
            }
        }
        // Transposed: poison dy, every plan.
        let mut dy = random(p.output_shape(), seed ^ 2);
        let mut marker = Array4::zeros(p.output_shape());
        let idx = at.index(dy.len());
        dy.as_slice_mut().unwrap()[idx] = bad;
        marker.as_slice_mut().unwrap()[idx] = 1.0;
        let touched = reference::backward_data(&p, marker.view(), ones_w.view()).unwrap();
        for plan in [DataPlan::Phases, DataPlan::Col2im, DataPlan::PhaseMajor, DataPlan::SubPixel, DataPlan::Direct, DataPlan::Winograd, DataPlan::Depthwise] {
            let dx = conv::backward_data_with(plan, &p, dy.view(), w.view()).unwrap();
            for (v, t) in dx.iter().zip(&touched) {
                prop_assert_eq!(!v.is_finite(), *t != 0.0, "{:?}", plan);
            }
        }
        // Filter gradient: as in TensorFlow and PyTorch (im2col with explicit zero
        // padding, 0 * NaN = NaN), a non-finite dy element reaches every tap of its output
        // channel, also where the tap reads padding.
        let x = random(p.input_shape(), seed ^ 3);
        let channel = idx % p.out_channels;
        for plan in [FilterPlan::Im2col, FilterPlan::Winograd, FilterPlan::Depthwise] {
            let dw = conv::backward_filter_with(plan, &p, x.view(), dy.view()).unwrap();
            for ((_, _, _, co), v) in dw.indexed_iter() {
                prop_assert_eq!(!v.is_finite(), co == channel, "{:?}", plan);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]
    /// The f32 few-channel plans (RGB inputs or outputs), which skip kernel rows wholly in
    /// the padding, propagate NaN and Inf as the other plans do: exactly to the connected
    /// outputs, and in the filter gradient to every tap of the poisoned `dy` element's
    /// output channel (im2col's 0 * NaN in TensorFlow and PyTorch).
    #[test]
    fn few_channel_plans_propagate_non_finite_values(
        i in 3usize..9, k in 1usize..4, s in 1usize..3, d in 1usize..3, pb in 0usize..3, pa in 0usize..2,
        few in 1usize..4, many in 9usize..24, few_inputs in any::<bool>(),
        at in any::<prop::sample::Index>(), inf in any::<bool>(), seed in any::<u64>(),
    ) {
        let (c, o) = if few_inputs { (few, many) } else { (many, few) };
        let Some(p) = problem((i, k, s, d, pb, pa), c, o) else { return Ok(()) };
        let bad = if inf { f32::INFINITY } else { f32::NAN };
        let f32s = |a: Array4<f64>| a.mapv(|v| v as f32);
        let w = f32s(random(p.filter_shape(), seed));
        let ones_w = Array4::from_elem(p.filter_shape(), 1.0);
        let poisoned = |shape: [usize; 4], seed: u64| {
            let (mut values, mut marker) = (f32s(random(shape, seed)), Array4::zeros(shape));
            let idx = at.index(values.len());
            values.as_slice_mut().unwrap()[idx] = bad;
            marker.as_slice_mut().unwrap()[idx] = 1.0;
            (values, marker, idx)
        };
        let (x, marker, _) = poisoned(p.input_shape(), seed ^ 1);
        let touched = reference::forward(&p, marker.view(), ones_w.view()).unwrap();
        let y = conv::forward_with(ForwardPlan::FewChannels, &p, x.view(), w.view()).unwrap();
        for (v, t) in y.iter().zip(&touched) {
            prop_assert_eq!(!v.is_finite(), *t != 0.0, "forward");
        }
        let (dy, marker, idx) = poisoned(p.output_shape(), seed ^ 2);
        let touched = reference::backward_data(&p, marker.view(), ones_w.view()).unwrap();
        let dx = conv::backward_data_with(DataPlan::FewChannels, &p, dy.view(), w.view()).unwrap();
        for (v, t) in dx.iter().zip(&touched) {
            prop_assert_eq!(!v.is_finite(), *t != 0.0, "backward data");
        }
        let x = f32s(random(p.input_shape(), seed ^ 3));
        let dw = conv::backward_filter_with(FilterPlan::FewChannels, &p, x.view(), dy.view()).unwrap();
        for ((_, _, _, co), v) in dw.indexed_iter() {
            prop_assert_eq!(!v.is_finite(), co == idx % p.out_channels, "filter gradient");
        }
    }
}

/// One NaN (or, with `inf`, infinity) in f32 `dy` or (with `in_filter`) the filter, at
/// the `at`-th value, through `plan`: whether exactly the outputs connected to it (the
/// reference with positive data and a marker on that side) come out non-finite.
fn non_finite_reaches_the_connected_outputs(
    p: &Problem,
    plan: DataPlan,
    (in_filter, at, inf): (bool, prop::sample::Index, bool),
    seed: u64,
) -> bool {
    let bad = if inf { f32::INFINITY } else { f32::NAN };
    let f32s = |a: Array4<f64>| a.mapv(|v| v as f32);
    let (mut w, mut dy) = (
        f32s(random(p.filter_shape(), seed)),
        f32s(random(p.output_shape(), seed ^ 1)),
    );
    let (mut w_marker, mut dy_marker) = (
        Array4::zeros(p.filter_shape()),
        Array4::zeros(p.output_shape()),
    );
    let (values, marker) = if in_filter {
        (&mut w, &mut w_marker)
    } else {
        (&mut dy, &mut dy_marker)
    };
    let idx = at.index(values.len());
    values.as_slice_mut().unwrap()[idx] = bad;
    marker.as_slice_mut().unwrap()[idx] = 1.0;
    let ones_dy = Array4::from_elem(p.output_shape(), 1.0);
    let ones_w = Array4::from_elem(p.filter_shape(), 1.0);
    let touched = if in_filter {
        reference::backward_data(p, ones_dy.view(), w_marker.view()).unwrap()
    } else {
        reference::backward_data(p, dy_marker.view(), ones_w.view()).unwrap()
    };
    let dx = conv::backward_data_with(plan, p, dy.view(), w.view()).unwrap();
    dx.iter()
        .zip(&touched)
        .all(|(v, t)| v.is_finite() == (*t == 0.0))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]
    /// The f32 tile product (kernel equal to stride: U-Net's up-convolutions) propagates
    /// NaN and Inf from `dy` or from the filter exactly to the connected outputs.
    #[test]
    fn tile_product_propagates_non_finite_values(
        size in 1usize..6, k in 1usize..4, c in 16usize..40, o in 1usize..20,
        in_filter in any::<bool>(), at in any::<prop::sample::Index>(), inf in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let Some(p) = problem((size * k, k, k, 1, 0, 0), c, o) else { return Ok(()) };
        prop_assert!(non_finite_reaches_the_connected_outputs(&p, DataPlan::Tiles, (in_filter, at, inf), seed));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]
    /// Calls the narrow Winograd engine would take (DCGAN's k4 s2 RGB layer) propagate
    /// NaN and Inf from `dy` or from the filter exactly to the connected outputs: the
    /// transforms would spread them, so such calls take a direct plan.
    #[test]
    fn narrow_winograd_propagates_non_finite_values(
        size in 2usize..12, c in 1usize..5, o in 16usize..40,
        in_filter in any::<bool>(), at in any::<prop::sample::Index>(), inf in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let Some(p) = problem((2 * size, 4, 2, 1, 1, 1), c, o) else { return Ok(()) };
        prop_assert!(non_finite_reaches_the_connected_outputs(&p, DataPlan::Winograd, (in_filter, at, inf), seed));
    }
}

/// f64 kernels agree with the reference to 1e-12 relative; the f32 kernels' error
/// against the f64 reference stays within a few units of f32 rounding times sqrt(terms)
/// for the direct plans, and within 16 times that for the plans chosen by default
/// (Winograd's F(4x4, 3x3) transforms have entries up to 8, and its products up to 1/4:
/// measured about 60 units here, against 5 for the direct plans).
#[test]
fn floating_point_error_is_bounded() {
    let (mut worst_direct, mut worst_chosen): (f64, f64) = (0.0, 0.0);
    let mut winograd_cases = 0;
    for (seed, (i, k, s, c, o)) in [
        (8, 3, 1, 64, 32),
        (16, 4, 2, 128, 64),
        (12, 5, 3, 48, 8),
        (20, 2, 2, 96, 3),
        (28, 3, 1, 128, 128),
        (64, 4, 2, 3, 64),
    ]
    .into_iter()
    .enumerate()
    {
        let p = problem((i, k, s, 1, 1, 1), c, o).unwrap();
        winograd_cases += usize::from(ForwardPlan::choose(&p) == ForwardPlan::Winograd)
            + usize::from(DataPlan::choose(&p) == DataPlan::Winograd)
            + usize::from(FilterPlan::choose(&p) == FilterPlan::Winograd);
        let terms = (k * k * c).max(p.batch * p.height.output * p.width.output) as f64;
        let (x, w, dy) = (
            random(p.input_shape(), seed as u64),
            random(p.filter_shape(), 7),
            random(p.output_shape(), 9),
        );
        let exact = [
            reference::forward(&p, x.view(), w.view()).unwrap(),
            reference::backward_data(&p, dy.view(), w.view()).unwrap(),
            reference::backward_filter(&p, x.view(), dy.view()).unwrap(),
        ];
        let f64s = [
            conv::forward(&p, x.view(), w.view()).unwrap(),
            conv::backward_data(&p, dy.view(), w.view()).unwrap(),
            conv::backward_filter(&p, x.view(), dy.view()).unwrap(),
        ];
        let (x32, w32, dy32) = (
            x.mapv(|v| v as f32),
            w.mapv(|v| v as f32),
            dy.mapv(|v| v as f32),
        );
        let chosen = [
            conv::forward(&p, x32.view(), w32.view()).unwrap(),
            conv::backward_data(&p, dy32.view(), w32.view()).unwrap(),
            conv::backward_filter(&p, x32.view(), dy32.view()).unwrap(),
        ];
        let direct = [
            conv::forward_with(ForwardPlan::Im2col, &p, x32.view(), w32.view()).unwrap(),
            conv::backward_data_with(DataPlan::Phases, &p, dy32.view(), w32.view()).unwrap(),
            conv::backward_filter_with(FilterPlan::Im2col, &p, x32.view(), dy32.view()).unwrap(),
        ];
        let units = |e: f64, b: f32| (e - b as f64).abs() / (terms.sqrt() * f32::EPSILON as f64);
        for d in 0..3 {
            for (e, a) in exact[d].iter().zip(&f64s[d]) {
                assert!(
                    (e - a).abs() <= 1e-12 * e.abs().max(1.0),
                    "f64 direction {d}: {a} vs {e}"
                );
            }
            for (e, b) in exact[d].iter().zip(&chosen[d]) {
                worst_chosen = worst_chosen.max(units(*e, *b));
            }
            for (e, b) in exact[d].iter().zip(direct.get(d).unwrap_or(&chosen[d])) {
                worst_direct = worst_direct.max(units(*e, *b));
            }
        }
    }
    assert!(winograd_cases >= 3, "only {winograd_cases} Winograd calls");
    assert!(
        worst_direct < 8.0,
        "f32 error {worst_direct} x sqrt(terms) x eps"
    );
    assert!(
        worst_chosen < 128.0,
        "f32 error {worst_chosen} x sqrt(terms) x eps"
    );
}

fn npy(descr: &str, fortran: bool, shape: &str, payload: &[u8]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(payload);
    out
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("convt-npy-{}-{name}.npy", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn npy_files_are_read_or_refused_clearly() {
    let values: Vec<f32> = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let le: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let be: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    // Little- and big-endian, C and Fortran order: the same 2x3 array.
    let c = Tensor::read_npy(&write("le", &npy("<f4", false, "(2, 3)", &le))).unwrap();
    assert_eq!(
        Tensor::read_npy(&write("be", &npy(">f4", false, "(2, 3)", &be))).unwrap(),
        c
    );
    let fortran_payload: Vec<u8> = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f = Tensor::read_npy(&write(
        "fortran",
        &npy("<f4", true, "(2, 3)", &fortran_payload),
    ))
    .unwrap();
    let (Tensor::F32(c), Tensor::F32(f)) = (c, f) else {
        panic!("float32 expected")
    };
    assert_eq!(c, f);
    // Refusals name the file and the problem.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", npy("<f4", false, "(2, 3)", &le[..10]), ""),
        ("lying", npy("<f4", false, "(100, 3)", &le), ""),
        (
            "ints",
            npy("<i4", false, "(2, 3)", &le),
            "unsupported dtype",
        ),
        ("garbage", b"not a numpy file at all".to_vec(), ""),
        ("empty", vec![], ""),
    ];
    for (name, bytes, needle) in cases {
        let path = write(name, &bytes);
        let err = Tensor::read_npy(&path).expect_err(name).to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains(needle),
            "{name}: {err}"
        );
        std::fs::remove_file(&path).ok();
    }
    let missing = std::env::temp_dir().join("convt-no-such-file.npy");
    assert!(Tensor::read_npy(&missing)
        .unwrap_err()
        .to_string()
        .contains("convt-no-such-file.npy"));
}

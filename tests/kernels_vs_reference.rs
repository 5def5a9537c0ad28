//! Every kernel direction against the reference loops over random geometries.
//! Data are small integers, so f64 sums are exact and comparisons need no tolerance,
//! except for the Winograd plans, whose transforms hold fractions (1/2, 1/6, ...): they
//! must agree to 1e-9 (their f64 rounding errors are around 1e-14 here).

use convt::conv::{DataPlan, FilterPlan, ForwardPlan};
use convt::layout::DataFormat;
use convt::problem::{Axis, AxisPadding, Problem, Taps};
use convt::{conv, reference};
use ndarray::Array4;
use proptest::prelude::*;

fn axis_strategy() -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize)> {
    // input, kernel, stride, dilation, pad_before, pad_after
    (
        1usize..12,
        1usize..5,
        1usize..4,
        1usize..3,
        0usize..3,
        0usize..3,
    )
}

fn make_axis(a: (usize, usize, usize, usize, usize, usize)) -> Option<Axis> {
    let (i, k, s, d, pb, pa) = a;
    Axis::forward(
        "h",
        i,
        Taps::new(k, s, d),
        AxisPadding::Explicit {
            before: pb,
            after: pa,
        },
    )
    .ok()
}

fn ints(shape: [usize; 4], seed: u64) -> Array4<f64> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Array4::from_shape_fn(shape, |_| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) % 7) as f64 - 3.0
    })
}

/// The largest absolute difference, NaN where any difference is (`f64::max` would skip
/// it, so a NaN output could pass a tolerance).
fn max_difference(a: &Array4<f64>, b: &Array4<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, |m, d| {
            if m.is_nan() || d.is_nan() {
                f64::NAN
            } else {
                m.max(d)
            }
        })
}

/// Geometries the Winograd and sub-pixel plans take (stride-1 forward, sub-pixel transposed with
/// `ceil(kernel / stride)` from 2 to 5 taps), many channels and tiles that end
/// mid-image, in both directions and with explicit, SAME and cropping paddings.
#[test]
fn winograd_plans_equal_reference() {
    let mut count = 0;
    for (i, k, s, c, o, pads) in [
        (37usize, 3usize, 1usize, 19, 21, (1, 1)),
        (9, 2, 1, 16, 8, (0, 1)),
        (14, 5, 1, 9, 12, (2, 2)),
        (11, 4, 1, 8, 9, (3, 0)),
        (16, 4, 2, 12, 10, (1, 1)),
        (13, 3, 2, 10, 16, (0, 2)),
        (20, 6, 3, 9, 9, (2, 1)),
        (9, 64, 32, 3, 4, (16, 16)),
        (23, 5, 2, 8, 8, (4, 3)),
    ] {
        let axis = |size| {
            Axis::forward(
                "h",
                size,
                Taps::new(k, s, 1),
                AxisPadding::Explicit {
                    before: pads.0,
                    after: pads.1,
                },
            )
        };
        for (hi, wi) in [(i, i), (i + 3, i.saturating_sub(2).max(k))] {
            let (Ok(h), Ok(w)) = (axis(hi), axis(wi)) else {
                continue;
            };
            let p = Problem::new(2, c, o, 1, h, w).unwrap();
            let x = ints(p.input_shape(), 7);
            let f = ints(p.filter_shape(), 8);
            let dy = ints(p.output_shape(), 9);
            let expected = reference::backward_data(&p, dy.view(), f.view()).unwrap();
            let got =
                conv::backward_data_with(DataPlan::Winograd, &p, dy.view(), f.view()).unwrap();
            assert!(max_difference(&got, &expected) < 1e-9, "{p:?}");
            let expected = reference::backward_filter(&p, x.view(), dy.view()).unwrap();
            let got =
                conv::backward_filter_with(FilterPlan::Winograd, &p, x.view(), dy.view()).unwrap();
            assert!(
                max_difference(&got, &expected) < 1e-9,
                "filter gradient {p:?}"
            );
            // NCHW data, staged channels-last per block: the same sums in the same order.
            let nchw = conv::backward_filter_in_with(
                FilterPlan::Winograd,
                DataFormat::Nchw,
                &p,
                to_nchw(&x).view(),
                to_nchw(&dy).view(),
            )
            .unwrap();
            assert_eq!(nchw, got, "NCHW filter gradient {p:?}");
            if s == 1 {
                let expected = reference::forward(&p, x.view(), f.view()).unwrap();
                let got =
                    conv::forward_with(ForwardPlan::Winograd, &p, x.view(), f.view()).unwrap();
                assert!(max_difference(&got, &expected) < 1e-9, "{p:?}");
            }
            count += 1;
        }
    }
    assert!(count >= 12, "only {count} geometries were valid");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn kernels_equal_reference(
        h in axis_strategy(), w in axis_strategy(),
        batch in 0usize..3, groups in 1usize..4, cg in 0usize..4, og in 0usize..4, seed in any::<u64>()
    ) {
        let (Some(h), Some(w)) = (make_axis(h), make_axis(w)) else { return Ok(()) };
        let p = Problem::new(batch, cg * groups, og * groups, groups, h, w).unwrap();
        let x = ints(p.input_shape(), seed);
        let f = ints(p.filter_shape(), seed ^ 1);
        let dy = ints(p.output_shape(), seed ^ 2);
        let expected = reference::forward(&p, x.view(), f.view()).unwrap();
        prop_assert_eq!(&conv::forward_with(ForwardPlan::Im2col, &p, x.view(), f.view()).unwrap(), &expected);
        prop_assert_eq!(&conv::forward_with(ForwardPlan::Depthwise, &p, x.view(), f.view()).unwrap(), &expected);
        let nchw = conv::forward_in_with(ForwardPlan::Depthwise, DataFormat::Nchw, &p, to_nchw(&x).view(), f.view()).unwrap();
        prop_assert_eq!(nchw, to_nchw(&expected), "NCHW depthwise");
        let nchw = conv::forward_in_with(ForwardPlan::Im2col, DataFormat::Nchw, &p, to_nchw(&x).view(), f.view()).unwrap();
        prop_assert_eq!(nchw, to_nchw(&expected), "NCHW im2col");
        let winograd = conv::forward_with(ForwardPlan::Winograd, &p, x.view(), f.view()).unwrap();
        prop_assert!(max_difference(&winograd, &expected) < 1e-9, "forward Winograd");
        let nchw = conv::forward_in_with(ForwardPlan::Winograd, DataFormat::Nchw, &p, to_nchw(&x).view(), f.view()).unwrap();
        prop_assert!(max_difference(&nchw, &to_nchw(&expected)) < 1e-9, "NCHW forward Winograd");
        let expected = reference::backward_data(&p, dy.view(), f.view()).unwrap();
        for plan in [DataPlan::Phases, DataPlan::Col2im, DataPlan::PhaseMajor, DataPlan::SubPixel, DataPlan::Direct, DataPlan::Depthwise] {
            prop_assert_eq!(&conv::backward_data_with(plan, &p, dy.view(), f.view()).unwrap(), &expected, "{:?}", plan);
        }
        let winograd = conv::backward_data_with(DataPlan::Winograd, &p, dy.view(), f.view()).unwrap();
        prop_assert!(max_difference(&winograd, &expected) < 1e-9, "backward-data Winograd");
        // Every plan on NCHW data: the column, Winograd and sub-pixel plans as it lies
        // (tiles and windows gathered from the planes, lines written by transposes).
        prop_assert!(kernels_fit_nchw(&p));
        for plan in [DataPlan::Phases, DataPlan::Col2im, DataPlan::PhaseMajor, DataPlan::SubPixel, DataPlan::Direct, DataPlan::Depthwise, DataPlan::Winograd] {
            let nchw = conv::backward_data_in_with(plan, DataFormat::Nchw, &p, to_nchw(&dy).view(), f.view()).unwrap();
            prop_assert!(max_difference(&nchw, &to_nchw(&expected)) < 1e-9, "NCHW {:?}", plan);
            if plan != DataPlan::Winograd {
                prop_assert_eq!(nchw, to_nchw(&expected), "NCHW {:?}", plan);
            }
        }
        let expected = reference::backward_filter(&p, x.view(), dy.view()).unwrap();
        prop_assert_eq!(&conv::backward_filter(&p, x.view(), dy.view()).unwrap(), &expected);
        for plan in [FilterPlan::Im2col, FilterPlan::Depthwise] {
            let nhwc = conv::backward_filter_with(plan, &p, x.view(), dy.view()).unwrap();
            prop_assert_eq!(&nhwc, &expected, "{:?}", plan);
            let nchw = conv::backward_filter_in_with(plan, DataFormat::Nchw, &p, to_nchw(&x).view(), to_nchw(&dy).view()).unwrap();
            prop_assert_eq!(&nchw, &expected, "NCHW {:?}", plan);
        }
    }
}

/// The Winograd filter gradient over several blocks of tiles, a block ending inside a
/// tile row of an image, on NHWC and NCHW data (the NCHW staging covers each run of a
/// block's tiles along a tile row).
#[test]
fn winograd_filter_gradient_spans_blocks() {
    let a = Axis::forward(
        "h",
        80,
        Taps::new(4, 2, 1),
        AxisPadding::Explicit {
            before: 1,
            after: 1,
        },
    )
    .unwrap();
    // 3 images of 10 x 10 tiles; 64 + 64 channels make blocks of 262 tiles.
    let p = Problem::new(3, 64, 64, 1, a, a).unwrap();
    assert_eq!(FilterPlan::choose(&p), FilterPlan::Winograd);
    let x = ints(p.input_shape(), 3);
    let dy = ints(p.output_shape(), 4);
    let expected = reference::backward_filter(&p, x.view(), dy.view()).unwrap();
    let nhwc = conv::backward_filter_with(FilterPlan::Winograd, &p, x.view(), dy.view()).unwrap();
    assert!(max_difference(&nhwc, &expected) < 1e-6);
    let (x, dy) = (to_nchw(&x), to_nchw(&dy));
    let nchw = conv::backward_filter_in_with(
        FilterPlan::Winograd,
        DataFormat::Nchw,
        &p,
        x.view(),
        dy.view(),
    )
    .unwrap();
    assert_eq!(nchw, nhwc);
}

/// Sizes that straddle the kernels' tiles: many pixels and channels, so forward and
/// filter-gradient tiles end mid-image and the filter gradient sums several partials.
#[test]
fn large_problems_cross_tile_boundaries() {
    for (i, k, s, c) in [
        (37, 3, 1, 19),
        (40, 4, 2, 33),
        (23, 5, 3, 40),
        (128, 2, 2, 17),
        (90, 3, 3, 18),
    ] {
        let a = Axis::forward("h", i, Taps::new(k, s, 1), AxisPadding::SameUpper).unwrap();
        let p = Problem::new(2, c, c + 3, 1, a, a).unwrap();
        let x = ints(p.input_shape(), 7);
        let f = ints(p.filter_shape(), 8);
        let dy = ints(p.output_shape(), 9);
        // The chosen plans (some of them Winograd's, hence the tolerance).
        let y = conv::forward(&p, x.view(), f.view()).unwrap();
        assert!(max_difference(&y, &reference::forward(&p, x.view(), f.view()).unwrap()) < 1e-9);
        let dx = conv::backward_data(&p, dy.view(), f.view()).unwrap();
        let expected = reference::backward_data(&p, dy.view(), f.view()).unwrap();
        assert!(max_difference(&dx, &expected) < 1e-9);
        let dw = reference::backward_filter(&p, x.view(), dy.view()).unwrap();
        assert_eq!(conv::backward_filter(&p, x.view(), dy.view()).unwrap(), dw);
        // NCHW: blocks within each image, several partial sums.
        let (x, dy) = (to_nchw(&x), to_nchw(&dy));
        let nchw = conv::backward_filter_in_with(
            FilterPlan::Im2col,
            DataFormat::Nchw,
            &p,
            x.view(),
            dy.view(),
        )
        .unwrap();
        assert_eq!(nchw, dw, "NCHW {p:?}");
    }
}

/// Found by fuzzing: a stride far beyond the input (here 2^20 on a 2x3 output) must not
/// cost one packed sub-filter per stride phase; every plan still equals the reference.
#[test]
fn huge_stride_on_a_tiny_problem() {
    let h = Axis::forward("h", 2, Taps::new(2, 1 << 20, 1), AxisPadding::Valid).unwrap();
    let w = Axis::forward("w", 3, Taps::new(2, 1 << 20, 1), AxisPadding::SameUpper).unwrap();
    let p = Problem::new(1, 3, 20, 1, h, w).unwrap();
    // The chosen plan (tiny: direct loops) is not one of the per-phase plans, and the
    // column plan, which such strides take on bigger problems, is exact too.
    let chosen = DataPlan::choose(&p);
    assert!(
        !matches!(chosen, DataPlan::Phases | DataPlan::PhaseMajor),
        "{chosen:?}"
    );
    let f = ints(p.filter_shape(), 3);
    let dy = ints(p.output_shape(), 4);
    let expected = reference::backward_data(&p, dy.view(), f.view()).unwrap();
    assert_eq!(
        conv::backward_data(&p, dy.view(), f.view()).unwrap(),
        expected
    );
    let col2im = conv::backward_data_with(DataPlan::Col2im, &p, dy.view(), f.view()).unwrap();
    assert_eq!(col2im, expected);
    let bigger = Problem::new(4, 64, 64, 1, h, w).unwrap();
    assert_eq!(DataPlan::choose(&bigger), DataPlan::Col2im);
}

/// An output of 16 MiB (f64), FCN-32s-like, which the sub-pixel plan writes with
/// streaming stores past the caches: still exactly the reference.
#[test]
fn streamed_output_equals_reference() {
    let a = Axis::forward(
        "h",
        256,
        Taps::new(64, 32, 1),
        AxisPadding::Explicit {
            before: 16,
            after: 16,
        },
    )
    .unwrap();
    let p = Problem::new(1, 32, 4, 1, a, a).unwrap();
    assert!(p.input_shape().iter().product::<usize>() * 8 >= 16 << 20);
    let f = ints(p.filter_shape(), 5);
    let dy = ints(p.output_shape(), 6);
    let expected = reference::backward_data(&p, dy.view(), f.view()).unwrap();
    let got = conv::backward_data_with(DataPlan::SubPixel, &p, dy.view(), f.view()).unwrap();
    assert_eq!(got, expected);
    // NCHW lines, staged and streamed.
    let got = conv::backward_data_in_with(
        DataPlan::SubPixel,
        DataFormat::Nchw,
        &p,
        to_nchw(&dy).view(),
        f.view(),
    )
    .unwrap();
    assert_eq!(got, to_nchw(&expected));
}

/// An NHWC array's NCHW copy.
fn to_nchw(a: &Array4<f64>) -> Array4<f64> {
    a.view()
        .permuted_axes([0, 3, 1, 2])
        .as_standard_layout()
        .into_owned()
}

/// Whether the NCHW column plan takes `p` (one channel's columns within its limit).
fn kernels_fit_nchw(p: &Problem) -> bool {
    p.height.kernel * p.width.kernel * p.height.output * p.width.output <= 1 << 20
}

/// The NCHW entry points on problems of every plan: the column, Winograd and sub-pixel
/// plans on NCHW data as it lies, the others through NHWC, all equal to the reference.
#[test]
fn nchw_data_equals_reference() {
    for (i, k, s, c, o, groups) in [
        (32usize, 4usize, 2usize, 3usize, 64usize, 1usize),
        (16, 2, 2, 32, 64, 1),
        (19, 3, 2, 8, 12, 2),
        (13, 5, 3, 6, 9, 3),
        (30, 3, 1, 16, 16, 1),
        (300, 1, 1, 8, 24, 1),
    ] {
        let a = Axis::forward("h", i, Taps::new(k, s, 1), AxisPadding::SameUpper).unwrap();
        let p = Problem::new(2, c, o, groups, a, a).unwrap();
        let f = ints(p.filter_shape(), 3);
        let dy = ints(p.output_shape(), 4);
        let x = ints(p.input_shape(), 5);
        let y = to_nchw(&reference::forward(&p, x.view(), f.view()).unwrap());
        let got = conv::forward_in(DataFormat::Nchw, &p, to_nchw(&x).view(), f.view()).unwrap();
        assert!(max_difference(&got, &y) < 1e-9, "forward {p:?}");
        let got = conv::forward_in_with(
            ForwardPlan::Im2col,
            DataFormat::Nchw,
            &p,
            to_nchw(&x).view(),
            f.view(),
        )
        .unwrap();
        assert_eq!(got, y, "forward im2col {p:?}");
        let expected = to_nchw(&reference::backward_data(&p, dy.view(), f.view()).unwrap());
        let got =
            conv::backward_data_in(DataFormat::Nchw, &p, to_nchw(&dy).view(), f.view()).unwrap();
        assert!(max_difference(&got, &expected) < 1e-9, "{p:?}");
        for plan in [
            DataPlan::Col2im,
            DataPlan::Phases,
            DataPlan::PhaseMajor,
            DataPlan::SubPixel,
            DataPlan::Direct,
        ] {
            let got = conv::backward_data_in_with(
                plan,
                DataFormat::Nchw,
                &p,
                to_nchw(&dy).view(),
                f.view(),
            )
            .unwrap();
            assert_eq!(got, expected, "{plan:?} {p:?}");
        }
        let got = conv::backward_data_in_with(
            DataPlan::Winograd,
            DataFormat::Nchw,
            &p,
            to_nchw(&dy).view(),
            f.view(),
        )
        .unwrap();
        assert!(max_difference(&got, &expected) < 1e-9, "Winograd {p:?}");
        let got = conv::forward_in_with(
            ForwardPlan::Winograd,
            DataFormat::Nchw,
            &p,
            to_nchw(&x).view(),
            f.view(),
        )
        .unwrap();
        assert!(max_difference(&got, &y) < 1e-9, "forward Winograd {p:?}");
        let expected = reference::backward_filter(&p, x.view(), dy.view()).unwrap();
        for plan in [FilterPlan::Im2col, FilterPlan::Winograd] {
            let got = conv::backward_filter_in_with(
                plan,
                DataFormat::Nchw,
                &p,
                to_nchw(&x).view(),
                to_nchw(&dy).view(),
            )
            .unwrap();
            assert!(max_difference(&got, &expected) < 1e-9, "{plan:?} {p:?}");
        }
    }
}

/// Depthwise problems (one input channel per group, channel multipliers 1-3) in all three
/// directions and both layouts, exactly the reference: strides, dilation, and taps that
/// land only in padding (a kernel as wide as the padded input), which leave empty tap
/// ranges.
#[test]
fn depthwise_plans_equal_reference() {
    for (i, k, s, d, pad, c, m) in [
        (17usize, 3usize, 1usize, 1usize, 1usize, 16usize, 1usize),
        (12, 4, 2, 1, 1, 8, 2),
        (9, 3, 2, 2, 2, 5, 3),
        (5, 7, 1, 1, 1, 4, 1),
        (20, 5, 3, 1, 0, 33, 1),
        // NCHW by blocks of 64 input channels: several blocks, the last partial.
        (10, 3, 2, 1, 1, 130, 2),
        (7, 3, 1, 1, 1, 70, 1),
    ] {
        let padding = AxisPadding::Explicit {
            before: pad,
            after: pad,
        };
        let a = Axis::forward("h", i, Taps::new(k, s, d), padding).unwrap();
        let p = Problem::new(2, c, c * m, c, a, a).unwrap();
        assert_eq!(ForwardPlan::choose(&p), ForwardPlan::Depthwise);
        assert_eq!(FilterPlan::choose(&p), FilterPlan::Depthwise);
        let (x, f, dy) = (
            ints(p.input_shape(), 1),
            ints(p.filter_shape(), 2),
            ints(p.output_shape(), 3),
        );
        let y = reference::forward(&p, x.view(), f.view()).unwrap();
        let dx = reference::backward_data(&p, dy.view(), f.view()).unwrap();
        let dw = reference::backward_filter(&p, x.view(), dy.view()).unwrap();
        for format in [DataFormat::Nhwc, DataFormat::Nchw] {
            let (xf, dyf) = match format {
                DataFormat::Nhwc => (x.clone(), dy.clone()),
                DataFormat::Nchw => (to_nchw(&x), to_nchw(&dy)),
            };
            let in_format = |a: &Array4<f64>| match format {
                DataFormat::Nhwc => a.clone(),
                DataFormat::Nchw => to_nchw(a),
            };
            let got =
                conv::forward_in_with(ForwardPlan::Depthwise, format, &p, xf.view(), f.view());
            assert_eq!(got.unwrap(), in_format(&y), "forward {format:?} {p:?}");
            let got =
                conv::backward_data_in_with(DataPlan::Depthwise, format, &p, dyf.view(), f.view());
            assert_eq!(got.unwrap(), in_format(&dx), "data {format:?} {p:?}");
            let got = conv::backward_filter_in_with(
                FilterPlan::Depthwise,
                format,
                &p,
                xf.view(),
                dyf.view(),
            );
            assert_eq!(got.unwrap(), dw, "filter {format:?} {p:?}");
        }
    }
}

/// In f32 (the AVX-512 block transposes), the NCHW paths compute exactly what the NHWC
/// ones do, value for value: Winograd forward and transposed, the sub-pixel plan and the
/// column plan only move data differently.
#[test]
fn nchw_f32_equals_nhwc_bitwise() {
    let f32_nchw = |a: &Array4<f32>| {
        a.view()
            .permuted_axes([0, 3, 1, 2])
            .as_standard_layout()
            .into_owned()
    };
    for (i, k, s, c, o, forward_plan, data_plan) in [
        (
            20usize,
            3usize,
            1usize,
            24usize,
            40usize,
            ForwardPlan::Winograd,
            DataPlan::Winograd,
        ),
        (16, 4, 2, 19, 33, ForwardPlan::Im2col, DataPlan::Winograd),
        (64, 16, 8, 5, 17, ForwardPlan::Im2col, DataPlan::SubPixel),
        (16, 2, 2, 32, 48, ForwardPlan::Im2col, DataPlan::Col2im),
    ] {
        let a = Axis::forward("h", i, Taps::new(k, s, 1), AxisPadding::SameUpper).unwrap();
        let p = Problem::new(2, c, o, 1, a, a).unwrap();
        let random = |shape: [usize; 4], seed: u64| {
            let mut rng = convt::bench::Xorshift::new(seed);
            Array4::from_shape_fn(shape, |_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
        };
        let (x, f, dy) = (
            random(p.input_shape(), 1),
            random(p.filter_shape(), 2),
            random(p.output_shape(), 3),
        );
        let y = conv::forward_with(forward_plan, &p, x.view(), f.view()).unwrap();
        let got = conv::forward_in_with(
            forward_plan,
            DataFormat::Nchw,
            &p,
            f32_nchw(&x).view(),
            f.view(),
        )
        .unwrap();
        assert_eq!(got, f32_nchw(&y), "forward {forward_plan:?} {p:?}");
        let dx = conv::backward_data_with(data_plan, &p, dy.view(), f.view()).unwrap();
        let got = conv::backward_data_in_with(
            data_plan,
            DataFormat::Nchw,
            &p,
            f32_nchw(&dy).view(),
            f.view(),
        )
        .unwrap();
        assert_eq!(got, f32_nchw(&dx), "{data_plan:?} {p:?}");
    }
}

/// An f64 array of small integers in f32: sums of such values are exact in f32 too.
fn f32_of(a: &Array4<f64>) -> Array4<f32> {
    a.mapv(|v| v as f32)
}

/// The f32-only kernels (the few-channel direct loops, products at most 16 columns
/// wide) on one problem, against the f64 reference: small integers make every sum exact
/// in any order, so the results must be equal.
fn check_f32_kernels(p: &Problem, seed: u64) {
    let (x, f, dy) = (
        ints(p.input_shape(), seed),
        ints(p.filter_shape(), seed ^ 1),
        ints(p.output_shape(), seed ^ 2),
    );
    let (x32, f32_, dy32) = (f32_of(&x), f32_of(&f), f32_of(&dy));
    let y = f32_of(&reference::forward(p, x.view(), f.view()).unwrap());
    for plan in [ForwardPlan::FewChannels, ForwardPlan::Im2col] {
        let got = conv::forward_with(plan, p, x32.view(), f32_.view()).unwrap();
        assert_eq!(got, y, "forward {plan:?} {p:?}");
        let nchw = f32_of(&to_nchw(&x));
        let got = conv::forward_in_with(plan, DataFormat::Nchw, p, nchw.view(), f32_.view());
        assert_eq!(
            got.unwrap(),
            f32_of(&to_nchw(&y.mapv(f64::from))),
            "NCHW {plan:?} {p:?}"
        );
    }
    let dx = f32_of(&reference::backward_data(p, dy.view(), f.view()).unwrap());
    for plan in [DataPlan::FewChannels, DataPlan::Col2im, DataPlan::Phases] {
        let got = conv::backward_data_with(plan, p, dy32.view(), f32_.view()).unwrap();
        assert_eq!(got, dx, "backward data {plan:?} {p:?}");
        let nchw = f32_of(&to_nchw(&dy));
        let got = conv::backward_data_in_with(plan, DataFormat::Nchw, p, nchw.view(), f32_.view());
        assert_eq!(
            got.unwrap(),
            f32_of(&to_nchw(&dx.mapv(f64::from))),
            "NCHW {plan:?} {p:?}"
        );
    }
    let dw = f32_of(&reference::backward_filter(p, x.view(), dy.view()).unwrap());
    for plan in [FilterPlan::FewChannels, FilterPlan::Im2col] {
        let got = conv::backward_filter_with(plan, p, x32.view(), dy32.view()).unwrap();
        assert_eq!(got, dw, "filter gradient {plan:?} {p:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn f32_kernels_equal_reference(
        h in axis_strategy(), w in axis_strategy(), batch in 1usize..3,
        few in 1usize..5, many in 1usize..40, few_inputs in any::<bool>(),
        unit_stride in any::<bool>(), seed in any::<u64>()
    ) {
        // Half the cases at stride 1, where the transposed direction has the direct form.
        let unit = |a: (usize, usize, usize, usize, usize, usize)| if unit_stride { (a.0, a.1, 1, a.3, a.4, a.5) } else { a };
        let (Some(h), Some(w)) = (make_axis(unit(h)), make_axis(unit(w))) else { return Ok(()) };
        let (cin, cout) = if few_inputs { (few, many) } else { (many + 8, few) };
        let p = Problem::new(batch, cin, cout, 1, h, w).unwrap();
        check_f32_kernels(&p, seed);
    }
}

/// The few-channel direct loops on wider images than the random geometries reach, so
/// that blocks of pixels lie wholly inside the input (read in place) as well as across
/// its edges, with more than 64 output channels (several blocks of registers), strides,
/// dilations and paddings; and the plans chosen for them.
#[test]
fn few_channel_kernels_on_wide_images() {
    let mut count = 0;
    for (cin, cout) in [
        (3, 70),
        (3, 16),
        (1, 5),
        (2, 33),
        (40, 3),
        (17, 1),
        (9, 2),
        (20, 4),
    ] {
        for (k, s, d, pad) in [
            (3, 1, 1, 1),
            (3, 2, 1, 1),
            (7, 2, 1, 3),
            (3, 1, 2, 2),
            (2, 1, 1, 0),
            (1, 1, 1, 0),
        ] {
            let axis = |i: usize| {
                Axis::forward(
                    "h",
                    i,
                    Taps::new(k, s, d),
                    AxisPadding::Explicit {
                        before: pad,
                        after: pad,
                    },
                )
                .unwrap()
            };
            let p = Problem::new(2, cin, cout, 1, axis(9), axis(41)).unwrap();
            check_f32_kernels(&p, count);
            assert_eq!(ForwardPlan::choose(&p), ForwardPlan::FewChannels, "{p:?}");
            assert_eq!(FilterPlan::choose(&p), FilterPlan::FewChannels, "{p:?}");
            if s == 1 && pad <= (k - 1) * d && p.flops() >= 16384.0 {
                assert_eq!(DataPlan::choose(&p), DataPlan::FewChannels, "{p:?}");
            }
            count += 1;
        }
    }
    assert_eq!(count, 48);
}

/// `plan` on one transposed problem (small integers) in f32 NHWC (the fresh-vector path),
/// f32 NCHW and f64, against the f64 reference: within `f32_tolerance` and
/// `f64_tolerance` of the largest output (0: equal).
fn check_transposed_plan(
    p: &Problem,
    plan: DataPlan,
    seed: u64,
    (f32_tolerance, f64_tolerance): (f64, f64),
) {
    let (f, dy) = (
        ints(p.filter_shape(), seed),
        ints(p.output_shape(), seed ^ 2),
    );
    let dx = reference::backward_data(p, dy.view(), f.view()).unwrap();
    let scale = dx.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let (f32_, dy32) = (f32_of(&f), f32_of(&dy));
    let got = conv::backward_data_with(plan, p, dy32.view(), f32_.view()).unwrap();
    assert_within(&got, &dx, f32_tolerance, &format!("f32 NHWC {p:?}"));
    let nchw = f32_of(&to_nchw(&dy));
    let got = conv::backward_data_in_with(plan, DataFormat::Nchw, p, nchw.view(), f32_.view());
    assert_within(
        &got.unwrap(),
        &to_nchw(&dx),
        f32_tolerance,
        &format!("f32 NCHW {p:?}"),
    );
    let got = conv::backward_data_with(plan, p, dy.view(), f.view()).unwrap();
    let error = max_difference(&got, &dx);
    assert!(
        error <= f64_tolerance * scale,
        "f64 {p:?}: {error} of {scale}"
    );
}

/// The tile product (kernel equal to stride, no padding: each dy pixel writes its own
/// tile of dx) on one problem in f32 NHWC, its fresh-vector path, against the f64
/// reference: small integers make every sum exact in any order (at most 300 products of
/// at most 9), so the results must be equal. f64 and NCHW calls of the plan fall back to
/// the other plans and must equal the reference too.
fn check_tiles(p: &Problem, seed: u64) {
    check_transposed_plan(p, DataPlan::Tiles, seed, (0.0, 0.0));
    // (Stride 1 with few channels on one side takes the few-channel loops first.)
    let few =
        p.height.stride == 1 && p.width.stride == 1 && (p.in_channels <= 4 || p.out_channels <= 8);
    if p.width.kernel * p.in_channels >= 16 && p.flops() >= 16384.0 && !few {
        assert_eq!(DataPlan::choose(p), DataPlan::Tiles, "{p:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]
    #[test]
    fn tile_product_equals_reference(
        dy_h in 1usize..5, dy_w in 1usize..30, kh in 1usize..4, kw in 1usize..4,
        batch in 1usize..3, cin in 1usize..40, cout in 1usize..300, seed in any::<u64>()
    ) {
        // Wide dy rows end in partial blocks of pixels, runs of kw * cin values in
        // partial panels, and more than 256 dy channels in a second run of sums.
        let axis = |o: usize, k: usize| {
            Axis::forward("h", o * k, Taps::new(k, k, 1), AxisPadding::Valid).unwrap()
        };
        let p = Problem::new(batch, cin, cout, 1, axis(dy_h, kh), axis(dy_w, kw)).unwrap();
        check_tiles(&p, seed);
    }
}

/// U-Net-shaped up-convolutions (2x2 stride 2, TensorFlow's SAME and VALID give the same
/// geometry) take the tile product, and equal the reference.
#[test]
fn tile_product_on_unet_shapes() {
    for (size, cin, cout) in [(16, 64, 128), (8, 128, 256), (13, 32, 64), (5, 8, 300)] {
        let axis =
            Axis::forward("h", 2 * size, Taps::new(2, 2, 1), AxisPadding::SameUpper).unwrap();
        let p = Problem::new(2, cin, cout, 1, axis, axis).unwrap();
        assert_eq!(DataPlan::choose(&p), DataPlan::Tiles, "{p:?}");
        check_tiles(&p, size as u64);
    }
}

/// On NCHW data the stride-phase plans run as the column plan's NCHW form; beyond that
/// form's buffer limit (taps times dy pixels above 2^20) they go through NHWC. That
/// path, against the reference.
#[test]
fn nchw_phases_beyond_the_column_limit() {
    let axis = Axis::forward("h", 701, Taps::new(3, 2, 1), AxisPadding::Valid).unwrap();
    let p = Problem::new(1, 2, 3, 1, axis, axis).unwrap();
    assert!(9 * p.height.output * p.width.output > 1 << 20);
    let (f, dy) = (ints(p.filter_shape(), 5), ints(p.output_shape(), 6));
    let dx = to_nchw(&reference::backward_data(&p, dy.view(), f.view()).unwrap());
    for plan in [DataPlan::choose(&p), DataPlan::Phases, DataPlan::PhaseMajor] {
        let got =
            conv::backward_data_in_with(plan, DataFormat::Nchw, &p, to_nchw(&dy).view(), f.view());
        assert_eq!(got.unwrap(), dx, "{plan:?}");
    }
}

/// The narrow Winograd engine (the sub-pixel view with at most 16 result columns, stride
/// phases x dx channels, and at least 16 dy channels; products vectorised over tiles) in
/// f32 NHWC against the f64 reference. Its transforms hold halves and sixths, so results
/// are compared to 1e-5 of the largest output. f64 and NCHW calls of the plan take the
/// other engines and must equal the reference too.
fn check_narrow_winograd(p: &Problem, seed: u64) {
    check_transposed_plan(p, DataPlan::Winograd, seed, (1e-5, 1e-9));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(120))]
    #[test]
    fn narrow_winograd_equals_reference(
        taps in 2usize..6, stride_h in 1usize..4, stride_w in 1usize..4,
        short_h in any::<bool>(), short_w in any::<bool>(),
        dx_h in 1usize..40, dx_w in 1usize..40, pads in (0usize..6, 0usize..6, 0usize..6, 0usize..6),
        batch in 1usize..3, cin in 1usize..17, cout in 16usize..70, seed in any::<u64>()
    ) {
        // Kernels of `taps` taps per stride phase (the last phase one tap short when
        // `short`), every padding that leaves an output; the dx channels times the
        // stride phases at most 16, the dy channels in partial blocks of 16.
        let kernel = |s: usize, short: bool| (taps * s).saturating_sub(usize::from(short && s > 1));
        let axis = |size: usize, k: usize, s: usize, (before, after): (usize, usize)| {
            Axis::forward(
                "h",
                size.max(k),
                Taps::new(k, s, 1),
                AxisPadding::Explicit { before: before.min(k - 1), after: after.min(k - 1) },
            ).ok()
        };
        let cin = cin.min(16 / (stride_h * stride_w)).max(1);
        let (Some(h), Some(w)) = (
            axis(dx_h, kernel(stride_h, short_h), stride_h, (pads.0, pads.1)),
            axis(dx_w, kernel(stride_w, short_w), stride_w, (pads.2, pads.3)),
        ) else { return Ok(()) };
        let p = Problem::new(batch, cin, cout, 1, h, w).unwrap();
        check_narrow_winograd(&p, seed);
    }
}

/// An axis of `size` input positions with DCGAN's k4 s2 pad 1 taps.
fn dcgan_axis(size: usize) -> Axis {
    let padding = AxisPadding::Explicit {
        before: 1,
        after: 1,
    };
    Axis::forward("h", size, Taps::new(4, 2, 1), padding).unwrap()
}

/// An axis of at least `kernel` input positions with `kernel` taps at `stride`, padded
/// by `pad` (at most `kernel - 1`) on both sides; `None` where that leaves no output.
fn padded_axis(size: usize, kernel: usize, stride: usize, pad: usize) -> Option<Axis> {
    let pad = pad.min(kernel - 1);
    let padding = AxisPadding::Explicit {
        before: pad,
        after: pad,
    };
    Axis::forward("h", size.max(kernel), Taps::new(kernel, stride, 1), padding).ok()
}

/// Panics unless `got` (f32) is within `tolerance` times the largest magnitude of
/// `want` of it, everywhere.
fn assert_within(got: &Array4<f32>, want: &Array4<f64>, tolerance: f64, what: &str) {
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let error = max_difference(&got.mapv(f64::from), want);
    assert!(error <= tolerance * scale, "{what}: {error} of {scale}");
}

/// A DCGAN generator's RGB layer (k4 s2 pad 1, 64 -> 3) and its neighbours take the
/// narrow Winograd engine by default, and equal the reference.
#[test]
fn narrow_winograd_on_dcgan_shapes() {
    for (size, cin, cout, batch) in [
        (32, 3, 64, 4),
        (32, 4, 64, 2),
        (64, 3, 64, 1),
        (32, 3, 64, 2),
    ] {
        let axis = dcgan_axis(2 * size);
        let p = Problem::new(batch, cin, cout, 1, axis, axis).unwrap();
        assert_eq!(DataPlan::choose(&p), DataPlan::Winograd, "{p:?}");
        check_narrow_winograd(&p, size as u64);
    }
}

/// The wide Winograd engine (more than 16 result columns) in f32, f64, NHWC and NCHW on
/// DCGAN's k4 s2 pad 1 transposed layers, whose sub-pixel grid of `2^n + 1` positions
/// is not a multiple of the tile (the last tiles reach past it). Result columns fill
/// whole panels of the f32 panel product (4 phases x 16 channels) or not (4 x 10, 4 x
/// 17).
#[test]
fn wide_winograd_on_dcgan_shapes() {
    for (size, cin, cout, batch) in [(8, 16, 40, 2), (16, 10, 24, 1), (5, 17, 33, 3)] {
        let axis = dcgan_axis(2 * size);
        let p = Problem::new(batch, cin, cout, 1, axis, axis).unwrap();
        check_transposed_plan(&p, DataPlan::Winograd, size as u64, (1e-5, 1e-9));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]
    /// The wide Winograd engine on random stride-1 and sub-pixel geometries with at
    /// least 17 result columns (the f32 panel product's partial panels among them) and
    /// grids of any length.
    #[test]
    fn wide_winograd_equals_reference(
        taps in 2usize..4, stride in 1usize..3, dx_h in 3usize..30, dx_w in 3usize..30,
        pad in 0usize..3, batch in 1usize..3, cin in 17usize..40, cout in 1usize..24,
        seed in any::<u64>()
    ) {
        let kernel = taps * stride;
        let axis = |size| padded_axis(size, kernel, stride, pad);
        let (Some(h), Some(w)) = (axis(dx_h), axis(dx_w)) else { return Ok(()) };
        let p = Problem::new(batch, cin, cout, 1, h, w).unwrap();
        check_transposed_plan(&p, DataPlan::Winograd, seed, (1e-5, 1e-9));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]
    /// The forward Winograd plan in f32 (constant-coefficient transforms, the panel
    /// product) and f64 on random stride-1 square kernels, paddings and channel counts,
    /// both layouts: equal to the reference within Winograd's rounding.
    #[test]
    fn forward_winograd_f32_equals_reference(
        k in 2usize..6, size_h in 1usize..30, size_w in 1usize..30, pad in 0usize..3,
        batch in 1usize..3, cin in 1usize..40, cout in 1usize..70, seed in any::<u64>()
    ) {
        let axis = |size| padded_axis(size, k, 1, pad);
        let (Some(h), Some(w)) = (axis(size_h), axis(size_w)) else { return Ok(()) };
        let p = Problem::new(batch, cin, cout, 1, h, w).unwrap();
        let (x, f) = (ints(p.input_shape(), seed), ints(p.filter_shape(), seed ^ 1));
        let y = reference::forward(&p, x.view(), f.view()).unwrap();
        let scale = y.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let (x32, f32_) = (f32_of(&x), f32_of(&f));
        let got = conv::forward_with(ForwardPlan::Winograd, &p, x32.view(), f32_.view()).unwrap();
        assert_within(&got, &y, 1e-5, &format!("f32 NHWC {p:?}"));
        let nchw = f32_of(&to_nchw(&x));
        let got = conv::forward_in_with(ForwardPlan::Winograd, DataFormat::Nchw, &p, nchw.view(), f32_.view()).unwrap();
        assert_within(&got, &to_nchw(&y), 1e-5, &format!("f32 NCHW {p:?}"));
        let got = conv::forward_with(ForwardPlan::Winograd, &p, x.view(), f.view()).unwrap();
        prop_assert!(max_difference(&got, &y) <= 1e-9 * scale, "f64 {:?}", p);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(60))]
    /// The Winograd filter gradient in f32 (the input tiles' transforms with constant
    /// coefficients) and f64 on random kernels that are a multiple of the stride, both
    /// layouts: equal to the reference within Winograd's rounding.
    #[test]
    fn filter_winograd_f32_equals_reference(
        taps in 1usize..4, stride in 1usize..3, size_h in 4usize..30, size_w in 4usize..30,
        pad in 0usize..3, batch in 1usize..3, cin in 1usize..40, cout in 1usize..40,
        seed in any::<u64>()
    ) {
        let kernel = (taps * stride).max(2);
        let axis = |size| padded_axis(size, kernel, stride, pad);
        let (Some(h), Some(w)) = (axis(size_h), axis(size_w)) else { return Ok(()) };
        let p = Problem::new(batch, cin, cout, 1, h, w).unwrap();
        let (x, dy) = (ints(p.input_shape(), seed), ints(p.output_shape(), seed ^ 2));
        let dw = reference::backward_filter(&p, x.view(), dy.view()).unwrap();
        let (x32, dy32) = (f32_of(&x), f32_of(&dy));
        let got = conv::backward_filter_with(FilterPlan::Winograd, &p, x32.view(), dy32.view()).unwrap();
        assert_within(&got, &dw, 1e-5, &format!("f32 NHWC {p:?}"));
        let (x_nchw, dy_nchw) = (f32_of(&to_nchw(&x)), f32_of(&to_nchw(&dy)));
        let got = conv::backward_filter_in_with(FilterPlan::Winograd, DataFormat::Nchw, &p, x_nchw.view(), dy_nchw.view()).unwrap();
        assert_within(&got, &dw, 1e-5, &format!("f32 NCHW {p:?}"));
    }
}

//! Every kernel direction against the reference loops over random geometries.
//! Data are small integers, so f64 sums are exact and comparisons need no tolerance.

use convt::conv::DataPlan;
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
        prop_assert_eq!(conv::forward(&p, x.view(), f.view()).unwrap(), reference::forward(&p, x.view(), f.view()).unwrap());
        let expected = reference::backward_data(&p, dy.view(), f.view()).unwrap();
        for plan in [DataPlan::Phases, DataPlan::Col2im, DataPlan::PhaseMajor] {
            prop_assert_eq!(&conv::backward_data_with(plan, &p, dy.view(), f.view()).unwrap(), &expected, "{:?}", plan);
        }
        prop_assert_eq!(conv::backward_filter(&p, x.view(), dy.view()).unwrap(), reference::backward_filter(&p, x.view(), dy.view()).unwrap());
    }
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
        assert_eq!(
            conv::forward(&p, x.view(), f.view()).unwrap(),
            reference::forward(&p, x.view(), f.view()).unwrap()
        );
        assert_eq!(
            conv::backward_data(&p, dy.view(), f.view()).unwrap(),
            reference::backward_data(&p, dy.view(), f.view()).unwrap()
        );
        assert_eq!(
            conv::backward_filter(&p, x.view(), dy.view()).unwrap(),
            reference::backward_filter(&p, x.view(), dy.view()).unwrap()
        );
    }
}

/// Found by fuzzing: a stride far beyond the input (here 2^20 on a 2x3 output) must not
/// cost one packed sub-filter per stride phase; every plan still equals the reference.
#[test]
fn huge_stride_on_a_tiny_problem() {
    let h = Axis::forward("h", 2, Taps::new(2, 1 << 20, 1), AxisPadding::Valid).unwrap();
    let w = Axis::forward("w", 3, Taps::new(2, 1 << 20, 1), AxisPadding::SameUpper).unwrap();
    let p = Problem::new(1, 3, 20, 1, h, w).unwrap();
    assert_eq!(DataPlan::choose(&p), DataPlan::Col2im);
    let f = ints(p.filter_shape(), 3);
    let dy = ints(p.output_shape(), 4);
    let dx = conv::backward_data(&p, dy.view(), f.view()).unwrap();
    assert_eq!(
        dx,
        reference::backward_data(&p, dy.view(), f.view()).unwrap()
    );
}

//! Results do not depend on the thread count, and many threads calling the library at
//! once get identical, correct results.

use convt::bench::with_threads;
use convt::bench::Xorshift;
use convt::problem::{Axis, AxisPadding, Problem, Taps};
use convt::{conv, reference};
use ndarray::Array4;

fn random(shape: [usize; 4], seed: u64) -> Array4<f32> {
    let mut rng = Xorshift::new(seed);
    Array4::from_shape_fn(shape, |_| (rng.next_u64() % 2000) as f32 / 1000.0 - 1.0)
}

/// Problems big enough to be split into many tasks and partial sums.
fn problems() -> Vec<Problem> {
    let mut all = vec![];
    for (i, k, s, c, o, n) in [
        (33, 3, 1, 24, 40, 2),
        (40, 4, 2, 64, 32, 4),
        (17, 5, 3, 12, 10, 3),
        (64, 2, 2, 16, 8, 2),
        (96, 2, 3, 16, 32, 2),
        (64, 8, 4, 8, 8, 2),
        (30, 3, 1, 96, 80, 2),
    ] {
        let a = Axis::forward("h", i, Taps::new(k, s, 1), AxisPadding::SameUpper).unwrap();
        all.push(Problem::new(n, c, o, 1, a, a).unwrap());
    }
    // Depthwise (48 groups, multiplier 2), all three directions by its direct plans.
    let a = Axis::forward("h", 40, Taps::new(3, 2, 1), AxisPadding::SameUpper).unwrap();
    all.push(Problem::new(3, 48, 96, 48, a, a).unwrap());
    assert_eq!(
        convt::conv::FilterPlan::choose(&all[7]),
        convt::conv::FilterPlan::Depthwise
    );
    // Few channels on one side (RGB inputs, RGB outputs): the direct register loops in
    // all three directions, the filter gradient in fixed partials.
    let a = Axis::forward("h", 40, Taps::new(3, 1, 1), AxisPadding::SameUpper).unwrap();
    for (c, o) in [(3, 70), (40, 3)] {
        let p = Problem::new(2, c, o, 1, a, a).unwrap();
        assert_eq!(
            convt::conv::ForwardPlan::choose(&p),
            convt::conv::ForwardPlan::FewChannels
        );
        assert_eq!(
            convt::conv::DataPlan::choose(&p),
            convt::conv::DataPlan::FewChannels
        );
        assert_eq!(
            convt::conv::FilterPlan::choose(&p),
            convt::conv::FilterPlan::FewChannels
        );
        all.push(p);
    }
    // U-Net's up-convolution: the tile product, tiles stored straight into dx.
    let a = Axis::forward("h", 64, Taps::new(2, 2, 1), AxisPadding::SameUpper).unwrap();
    let p = Problem::new(2, 16, 32, 1, a, a).unwrap();
    assert_eq!(
        convt::conv::DataPlan::choose(&p),
        convt::conv::DataPlan::Tiles
    );
    all.push(p);
    // A DCGAN generator's RGB layer: the narrow Winograd engine, products vectorised
    // over groups of 16 tiles.
    let a = Axis::forward("h", 64, Taps::new(4, 2, 1), AxisPadding::SameUpper).unwrap();
    let p = Problem::new(2, 3, 64, 1, a, a).unwrap();
    assert_eq!(
        convt::conv::DataPlan::choose(&p),
        convt::conv::DataPlan::Winograd
    );
    all.push(p);
    // The Winograd plans, in both directions, are among them.
    assert_eq!(
        convt::conv::ForwardPlan::choose(&all[6]),
        convt::conv::ForwardPlan::Winograd
    );
    assert_eq!(
        convt::conv::DataPlan::choose(&all[6]),
        convt::conv::DataPlan::Winograd
    );
    // And the Winograd filter gradient.
    assert_eq!(
        convt::conv::FilterPlan::choose(&all[6]),
        convt::conv::FilterPlan::Winograd
    );
    // So are the direct backward-data plans (all[4] takes the banded col2im plan).
    assert_eq!(
        convt::conv::DataPlan::choose(&all[4]),
        convt::conv::DataPlan::Col2im
    );
    assert_eq!(
        convt::conv::DataPlan::choose(&all[1]),
        convt::conv::DataPlan::Phases
    );
    all
}

#[test]
fn bitwise_identical_for_any_thread_count() {
    for p in problems() {
        let x = random(p.input_shape(), 1);
        let w = random(p.filter_shape(), 2);
        let dy = random(p.output_shape(), 3);
        let run = |threads| {
            with_threads(threads, || {
                (
                    conv::forward(&p, x.view(), w.view()).unwrap(),
                    conv::backward_data(&p, dy.view(), w.view()).unwrap(),
                    conv::backward_filter(&p, x.view(), dy.view()).unwrap(),
                )
            })
            .unwrap()
        };
        let one = run(1);
        for threads in [2, 3, 4, 7] {
            let many = run(threads);
            // Bitwise: compare the bit patterns, not the values.
            for (a, b) in [(&one.0, &many.0), (&one.1, &many.1), (&one.2, &many.2)] {
                assert!(
                    a.iter()
                        .zip(b.iter())
                        .all(|(u, v)| u.to_bits() == v.to_bits()),
                    "{threads} threads differ on {p:?}"
                );
            }
        }
    }
}

#[test]
fn concurrent_callers_get_identical_correct_results() {
    let p = problems()[1];
    let x = random(p.input_shape(), 4);
    let w = random(p.filter_shape(), 5);
    let expected = conv::forward(&p, x.view(), w.view()).unwrap();
    let x64 = x.mapv(f64::from);
    let w64 = w.mapv(f64::from);
    let exact = reference::forward(&p, x64.view(), w64.view()).unwrap();
    assert!(expected
        .iter()
        .zip(&exact)
        .all(|(a, b)| (*a as f64 - b).abs() < 1e-4 * b.abs().max(1.0)));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..5)
                        .map(|_| conv::forward(&p, x.view(), w.view()).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for y in h.join().unwrap() {
                assert!(y
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
            }
        }
    });
}

//! The learned-upsampling demo's claims, on a short run: a Conv2dTranspose network beats
//! bilinear on held-out images; the baselines and the checkerboard arithmetic are right.

use convt::upsampling::{
    bilinear2, downsample2, flat_phase_imbalance, images, nearest2, overlap_counts, psnr, Network,
    Upsampling,
};
use ndarray::{s, Array4};

#[test]
fn learned_upsampling_beats_bilinear_on_held_out_images() {
    let train = images(200, 32, 11);
    let test = images(32, 32, 12);
    let (train_low, test_low) = (downsample2(&train), downsample2(&test));
    let mut net = Network::new(Upsampling::Transpose4, 8, true, 1);
    let mut losses = vec![];
    net.train(&train_low, &train, 150, 16, 2e-3, |_, loss| {
        losses.push(loss)
    })
    .unwrap();
    let first: f32 = losses[..10].iter().sum::<f32>() / 10.0;
    let last: f32 = losses[losses.len() - 10..].iter().sum::<f32>() / 10.0;
    assert!(last < first, "training loss must fall: {first} -> {last}");
    let learned = psnr(&net.predict(&test_low).unwrap(), &test);
    let bilinear = psnr(&bilinear2(&test_low), &test);
    assert!(
        learned > bilinear + 0.3,
        "learned {learned:.2} dB vs bilinear {bilinear:.2} dB"
    );
}

#[test]
fn baselines_are_exact_on_what_they_can_represent() {
    // Nearest and average pooling invert each other on block-constant images.
    let blocks = Array4::from_shape_fn((1, 4, 6, 1), |(_, i, j, _)| (i * 6 + j) as f32 / 24.0);
    assert_eq!(downsample2(&nearest2(&blocks)), blocks);
    // Bilinear reproduces a linear ramp away from the clamped border: the sample at
    // output x sits at input coordinate (x + 0.5) / 2 - 0.5.
    let ramp = Array4::from_shape_fn((1, 1, 8, 1), |(_, _, j, _)| j as f32);
    let up = bilinear2(&ramp);
    for x in 1..15 {
        let expected = ((x as f32 + 0.5) / 2.0 - 0.5).clamp(0.0, 7.0);
        assert!(
            (up[[0, 0, x, 0]] - expected).abs() < 1e-6,
            "x={x}: {}",
            up[[0, 0, x, 0]]
        );
    }
    let a = Array4::from_elem((1, 2, 2, 1), 0.5f32);
    assert!(psnr(&a, &a) > 100.0);
    assert!((psnr(&a, &Array4::from_elem((1, 2, 2, 1), 0.6)) - 20.0).abs() < 1e-4);
}

#[test]
fn checkerboard_arithmetic() {
    // SEMANTICS_DETAIL 5.6: kernel 3, stride 2 overlaps 1, 2 or 4 times; kernel 4 always 4.
    let k3 = overlap_counts(Upsampling::Transpose3, 8).unwrap();
    let interior = k3.slice(s![4..8, 4..8]);
    let mut values: Vec<f32> = interior.iter().copied().collect();
    values.sort_by(f32::total_cmp);
    values.dedup();
    assert_eq!(values, vec![1.0, 2.0, 4.0]);
    assert!(overlap_counts(Upsampling::Transpose4, 8)
        .unwrap()
        .slice(s![2..14, 2..14])
        .iter()
        .all(|&v| v == 4.0));
    assert!(overlap_counts(Upsampling::ResizeConv, 8)
        .unwrap()
        .slice(s![2..14, 2..14])
        .iter()
        .all(|&v| v == 9.0));
    // Resize-then-convolve has no phase imbalance on a flat input by construction; a
    // randomly initialised transposed convolution does.
    assert_eq!(
        flat_phase_imbalance(&Network::new(Upsampling::ResizeConv, 8, false, 5)).unwrap(),
        0.0
    );
    assert!(
        flat_phase_imbalance(&Network::new(Upsampling::Transpose3, 8, false, 5)).unwrap() > 1e-3
    );
}

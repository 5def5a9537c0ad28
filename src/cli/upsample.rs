//! `convt demo upsample`: learn 2x upsampling with a transposed convolution, compare it
//! with nearest and bilinear on held-out images, and show checkerboard artifacts.

use convt::upsampling::{
    bilinear2, downsample2, flat_phase_imbalance, images, nearest2, overlap_counts, overlap_ratio,
    psnr, write_png, Network, Upsampling,
};
use convt::Result;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{s, Array2, Array4};
use std::path::Path;
use std::time::Instant;

fn plane(a: &Array4<f32>, i: usize) -> Array2<f32> {
    a.slice(s![i, .., .., 0]).to_owned()
}

fn train_with_bar(
    net: &mut Network,
    low: &Array4<f32>,
    high: &Array4<f32>,
    steps: usize,
    label: &str,
) -> Result<f32> {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("  {prefix:<28} [{bar:30}] {pos}/{len} loss {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let loss = net.train(low, high, steps, 16, 2e-3, |step, loss| {
        if step % 10 == 0 || step + 1 == steps {
            bar.set_message(format!("{loss:.5}"));
        }
        bar.inc(1);
    })?;
    bar.finish();
    Ok(loss)
}

/// Runs the demo, writing pictures to `out`.
pub fn run(out: &Path, steps: usize) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| convt::ConvError::File {
        file: out.display().to_string(),
        message: e.to_string(),
    })?;
    say!("Learned 2x upsampling with conv2d_transpose (procedural 32x32 images, downsampled by 2x2 averaging)\n");
    let train_high = images(400, 32, 1);
    let test_high = images(64, 32, 2);
    let (train_low, test_low) = (downsample2(&train_high), downsample2(&test_high));
    let nearest = nearest2(&test_low);
    let bilinear = bilinear2(&test_low);

    say!("Network: Conv2dTranspose(1->16, k4, s2, p1) -> ReLU -> Conv2d(16->16, 3x3) -> ReLU -> Conv2d(16->1, 3x3)");
    say!("         plus Conv2dTranspose(1->1, k4, s2, p1) initialised to bilinear interpolation (also trained)");
    let mut net = Network::new(Upsampling::Transpose4, 16, true, 1);
    let start = Instant::now();
    train_with_bar(&mut net, &train_low, &train_high, steps, "training")?;
    let seconds = start.elapsed().as_secs_f64();
    let learned = net.predict(&test_low)?;
    let (p_nearest, p_bilinear, p_learned) = (
        psnr(&nearest, &test_high),
        psnr(&bilinear, &test_high),
        psnr(&learned, &test_high),
    );
    say!("\nHeld-out images (64, never trained on), PSNR:");
    say!("  nearest   {p_nearest:6.2} dB");
    say!("  bilinear  {p_bilinear:6.2} dB");
    say!("  learned   {p_learned:6.2} dB   ({:+.2} dB over bilinear; {steps} Adam steps of 16 images in {seconds:.1} s)", p_learned - p_bilinear);
    let rows: Vec<Vec<Array2<f32>>> = (0..4)
        .map(|i| {
            vec![
                plane(&nearest2(&test_low), i),
                plane(&bilinear, i),
                plane(&learned, i),
                plane(&test_high, i),
            ]
        })
        .collect();
    let pictures = out.join("upsampling.png");
    write_png(&pictures, &rows, 4)?;
    say!(
        "  before/after pictures (nearest | bilinear | learned | original): {}",
        pictures.display()
    );

    say!("\nCheckerboard artifacts (Odena, Dumoulin and Olah, 2016)");
    say!("  How many kernel taps land on each output cell (interior 4x4 patch, all-ones input and kernel):");
    let kinds = [
        (Upsampling::Transpose3, "transpose k3 s2"),
        (Upsampling::Transpose4, "transpose k4 s2"),
        (Upsampling::ResizeConv, "resize + conv 3x3"),
    ];
    for (kind, name) in kinds {
        let counts = overlap_counts(kind, 8)?;
        let patch: Vec<String> = counts
            .slice(s![4..8, 4..8])
            .rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .map(|v| format!("{v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        say!(
            "    {name:<18} [{}]  max/min = {:.1}",
            patch.join(" | "),
            overlap_ratio(&counts)
        );
    }
    say!("  Kernel 3 with stride 2 overlaps unevenly (1, 2, 4 taps): the stride-2 phases of the output get different sums.");
    say!("  Each upsampler in the same small network (8 channels, no bilinear branch), {} training steps.", steps / 2);
    say!("  Imbalance = max - min of the 4 stride-2 phase means of the response to a flat gray input (0 = no checkerboard):");
    say!(
        "    {:<18} {:>22} {:>16} {:>10}",
        "upsampler",
        "imbalance at init (5)",
        "after training",
        "PSNR"
    );
    let flat = Array4::<f32>::from_elem((1, 16, 16, 1), 0.5);
    let mut rows = vec![];
    for (kind, name) in kinds {
        let mut at_init = 0.0;
        for seed in 0..5 {
            at_init += flat_phase_imbalance(&Network::new(kind, 8, false, 10 + seed))? / 5.0;
        }
        let mut variant = Network::new(kind, 8, false, 3);
        let before = variant.predict(&flat)?;
        train_with_bar(&mut variant, &train_low, &train_high, steps / 2, name)?;
        let prediction = variant.predict(&test_low)?;
        let after = flat_phase_imbalance(&variant)?;
        say!(
            "    {name:<18} {at_init:>22.4} {after:>16.4} {:>7.2} dB",
            psnr(&prediction, &test_high)
        );
        let stretch = |a: &Array4<f32>| {
            let r = plane(a, 0);
            let mean = r.mean().unwrap_or(0.0);
            r.mapv(|v| ((v - mean) * 10.0 + 0.5).clamp(0.0, 1.0))
        };
        rows.push(vec![
            stretch(&before),
            stretch(&variant.predict(&flat)?),
            plane(&prediction, 0),
        ]);
    }
    let board = out.join("checkerboard.png");
    write_png(&board, &rows, 4)?;
    say!("  pictures, rows k3 | k4 | resize-conv: flat-input response at init and after training (contrast x10), a held-out prediction: {}", board.display());
    Ok(())
}

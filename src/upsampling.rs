//! Learned 2x upsampling, the seed's answer to "why would I use conv2d_transpose?":
//! procedural images, the fixed baselines (nearest, bilinear), a small network around a
//! `Conv2dTranspose(k4, s2)`, PSNR, and the checkerboard artifacts of Odena et al. (2016).
//!
//! `convt demo upsample` runs it; `tests/upsampling.rs` runs a short version.

use crate::autodiff::{Tape, Var};
use crate::error::Result;
use crate::nn::{Adam, Conv2d, Conv2dTranspose, Init, Optimizer, Parameter};
use crate::tf;
use ndarray::{s, Array2, Array4, ArrayD, Axis};
use rand::{RngExt, SeedableRng};

/// `count` grayscale `size x size` images in `[0, 1]` (NHWC, one channel): overlapping
/// rectangles, discs, stripes and gradients with sharp edges.
pub fn images(count: usize, size: usize, seed: u64) -> Array4<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Array4::<f32>::zeros((count, size, size, 1));
    let n = size as f32;
    for mut img in out.outer_iter_mut() {
        let base: f32 = rng.random_range(0.0..0.4);
        let (gx, gy): (f32, f32) = (rng.random_range(-0.3..0.3), rng.random_range(-0.3..0.3));
        for ((y, x, _), v) in img.indexed_iter_mut() {
            *v = base + gx * x as f32 / n + gy * y as f32 / n;
        }
        for _ in 0..rng.random_range(3..7) {
            let value: f32 = rng.random_range(0.0..1.0);
            let kind = rng.random_range(0..3);
            let (cx, cy) = (rng.random_range(0.0..n), rng.random_range(0.0..n));
            let (a, b) = (
                rng.random_range(2.0..n / 2.5),
                rng.random_range(2.0..n / 2.5),
            );
            let angle: f32 = rng.random_range(0.0..std::f32::consts::PI);
            let period: f32 = rng.random_range(3.0..8.0);
            for ((y, x, _), v) in img.indexed_iter_mut() {
                let (px, py) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let inside = match kind {
                    0 => px.abs() < a && py.abs() < b,
                    1 => px * px + py * py < a * a,
                    _ => {
                        let t = px * angle.cos() + py * angle.sin();
                        t.abs() < a * 1.5 && (t / period).rem_euclid(1.0) < 0.5
                    }
                };
                if inside {
                    *v = value;
                }
            }
        }
        img.mapv_inplace(|v| v.clamp(0.0, 1.0));
    }
    out
}

/// 2x2 average pooling.
pub fn downsample2(x: &Array4<f32>) -> Array4<f32> {
    let (n, h, w, c) = x.dim();
    Array4::from_shape_fn((n, h / 2, w / 2, c), |(b, i, j, k)| {
        (x[[b, 2 * i, 2 * j, k]]
            + x[[b, 2 * i + 1, 2 * j, k]]
            + x[[b, 2 * i, 2 * j + 1, k]]
            + x[[b, 2 * i + 1, 2 * j + 1, k]])
            / 4.0
    })
}

/// Nearest-neighbour 2x upsampling.
pub fn nearest2(x: &Array4<f32>) -> Array4<f32> {
    let (n, h, w, c) = x.dim();
    Array4::from_shape_fn((n, 2 * h, 2 * w, c), |(b, i, j, k)| x[[b, i / 2, j / 2, k]])
}

/// Bilinear 2x upsampling with half-pixel centres and clamped edges (as
/// `tf.image.resize` and PyTorch's `align_corners=False`).
pub fn bilinear2(x: &Array4<f32>) -> Array4<f32> {
    let (n, h, w, c) = x.dim();
    let sample = |len: usize, o: usize| {
        let src = ((o as f32 + 0.5) / 2.0 - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(len - 1);
        let i1 = (i0 + 1).min(len - 1);
        (i0, i1, src - i0 as f32)
    };
    Array4::from_shape_fn((n, 2 * h, 2 * w, c), |(b, i, j, k)| {
        let (y0, y1, fy) = sample(h, i);
        let (x0, x1, fx) = sample(w, j);
        let top = x[[b, y0, x0, k]] * (1.0 - fx) + x[[b, y0, x1, k]] * fx;
        let bottom = x[[b, y1, x0, k]] * (1.0 - fx) + x[[b, y1, x1, k]] * fx;
        top * (1.0 - fy) + bottom * fy
    })
}

/// Peak signal-to-noise ratio in dB for images in `[0, 1]`.
pub fn psnr(a: &Array4<f32>, b: &Array4<f32>) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len().max(1) as f64;
    10.0 * (1.0 / mse.max(1e-12)).log10()
}

/// How the network upsamples before refining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsampling {
    /// `Conv2dTranspose` kernel 4, stride 2, padding 1 (kernel divisible by stride).
    Transpose4,
    /// `Conv2dTranspose` kernel 3, stride 2, padding 1, output padding 1 (uneven overlap).
    Transpose3,
    /// Nearest-neighbour resize, then a 3x3 convolution (Odena et al.'s fix).
    ResizeConv,
}

/// A small upsampling network: an upsampling layer to `features` channels, ReLU, a 3x3
/// convolution, ReLU, a 3x3 convolution to one channel; with `skip`, plus a one-channel
/// `Conv2dTranspose(k4, s2)` initialised to bilinear interpolation (learned too).
pub struct Network {
    /// Which upsampling layer.
    pub kind: Upsampling,
    skip: Option<Conv2dTranspose<f32>>,
    up_transpose: Option<Conv2dTranspose<f32>>,
    up_conv: Option<Conv2d<f32>>,
    middle: Conv2d<f32>,
    last: Conv2d<f32>,
}

impl Network {
    /// A network with `features` channels; `skip` adds the bilinear-initialised branch.
    pub fn new(kind: Upsampling, features: usize, skip: bool, seed: u64) -> Network {
        let (up_transpose, up_conv) = match kind {
            Upsampling::Transpose4 => (
                Some(
                    Conv2dTranspose::new(1, features, [4, 4])
                        .stride(2)
                        .padding(1)
                        .init(Init::HeUniform, seed),
                ),
                None,
            ),
            Upsampling::Transpose3 => (
                Some(
                    Conv2dTranspose::new(1, features, [3, 3])
                        .stride(2)
                        .padding(1)
                        .output_padding(1)
                        .init(Init::HeUniform, seed),
                ),
                None,
            ),
            Upsampling::ResizeConv => (
                None,
                Some(Conv2d::new(1, features, [3, 3]).init(Init::HeUniform, seed)),
            ),
        };
        Network {
            kind,
            skip: skip.then(|| {
                Conv2dTranspose::new(1, 1, [4, 4])
                    .stride(2)
                    .padding(1)
                    .init(Init::Bilinear, 0)
                    .bias(false)
            }),
            up_transpose,
            up_conv,
            middle: Conv2d::new(features, features, [3, 3]).init(Init::HeUniform, seed + 1),
            last: Conv2d::new(features, 1, [3, 3]).init(
                if skip {
                    Init::Zeros
                } else {
                    Init::GlorotUniform
                },
                seed + 2,
            ),
        }
    }

    /// The network on the tape: `x` NHWC `[n, h, w, 1]` to `[n, 2h, 2w, 1]`.
    pub fn forward(&self, tape: &Tape<f32>, x: Var) -> Result<Var> {
        let up = match (&self.up_transpose, &self.up_conv) {
            (Some(t), _) => t.forward(tape, x)?,
            (None, Some(c)) => {
                let resized = tape.leaf(nearest2(&four(&tape.value(x))).into_dyn());
                c.forward(tape, resized)?
            }
            _ => unreachable!("one upsampling layer"),
        };
        let h = tape.relu(up);
        let h = tape.relu(self.middle.forward(tape, h)?);
        let out = self.last.forward(tape, h)?;
        match &self.skip {
            Some(skip) => tape.add(out, skip.forward(tape, x)?),
            None => Ok(out),
        }
    }

    /// Every trainable parameter.
    pub fn parameters(&mut self) -> Vec<&mut Parameter<f32>> {
        let mut all = vec![];
        if let Some(s) = &mut self.skip {
            all.extend(s.parameters());
        }
        if let Some(t) = &mut self.up_transpose {
            all.extend(t.parameters());
        }
        if let Some(c) = &mut self.up_conv {
            all.extend(c.parameters());
        }
        all.extend(self.middle.parameters());
        all.extend(self.last.parameters());
        all
    }

    /// The network's output for a batch.
    pub fn predict(&self, x: &Array4<f32>) -> Result<Array4<f32>> {
        let tape = Tape::new();
        let input = tape.leaf(x.clone().into_dyn());
        let y = self.forward(&tape, input)?;
        Ok(four(&tape.value(y)))
    }

    /// Adam on the mean squared error for `steps` mini-batches of `batch` images;
    /// `progress(step, loss)` is called after each step.
    pub fn train(
        &mut self,
        low: &Array4<f32>,
        high: &Array4<f32>,
        steps: usize,
        batch: usize,
        learning_rate: f64,
        mut progress: impl FnMut(usize, f32),
    ) -> Result<f32> {
        let mut adam = Adam::new(learning_rate);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut last = f32::NAN;
        for step in 0..steps {
            let idx: Vec<usize> = (0..batch)
                .map(|_| rng.random_range(0..low.len_of(Axis(0))))
                .collect();
            let x = low.select(Axis(0), &idx);
            let y = high.select(Axis(0), &idx);
            let tape = Tape::new();
            let input = tape.leaf(x.into_dyn());
            let target = tape.leaf(y.into_dyn());
            let out = self.forward(&tape, input)?;
            let loss = tape.mean(tape.square(tape.sub(out, target)?));
            let grads = tape.backward(loss)?;
            adam.step(&mut self.parameters(), &grads);
            last = tape.value(loss).iter().next().copied().unwrap_or(f32::NAN);
            progress(step, last);
        }
        Ok(last)
    }
}

fn four(a: &ArrayD<f32>) -> Array4<f32> {
    a.clone().into_dimensionality().expect("4-D network values")
}

/// How many kernel taps land on each output cell of a 2x upsampling layer for a
/// `size x size` input (computed with convt's own ops on all-ones data): uneven counts
/// in the interior are the arithmetic cause of checkerboard artifacts.
pub fn overlap_counts(kind: Upsampling, size: usize) -> Result<Array2<f32>> {
    let ones = Array4::<f32>::ones((1, size, size, 1));
    let y = match kind {
        Upsampling::Transpose4 | Upsampling::Transpose3 => {
            let k = if kind == Upsampling::Transpose4 { 4 } else { 3 };
            let layer = Conv2dTranspose::<f32>::new(1, 1, [k, k])
                .stride(2)
                .padding(1)
                .output_padding(4 - k)
                .init(Init::Constant(1.0), 0);
            let p = layer.problem(ones.shape())?;
            crate::conv::backward_data(&p, ones.view(), Array4::ones((k, k, 1, 1)).view())?
        }
        Upsampling::ResizeConv => {
            let opts = tf::Options::new(tf::Padding::Same);
            tf::conv2d(
                nearest2(&ones).view(),
                Array4::ones((3, 3, 1, 1)).view(),
                &opts,
            )?
        }
    };
    Ok(y.slice(s![0, .., .., 0]).to_owned())
}

/// Ratio of the largest to the smallest overlap count in the interior (1: even overlap).
pub fn overlap_ratio(counts: &Array2<f32>) -> f32 {
    let (h, w) = counts.dim();
    let interior = counts.slice(s![2..h - 2, 2..w - 2]);
    let max = interior.iter().cloned().fold(f32::MIN, f32::max);
    let min = interior.iter().cloned().fold(f32::MAX, f32::min);
    max / min.max(1e-6)
}

/// Checkerboard strength of an output: the spread (max - min) of the mean of the four
/// stride-2 phases of `prediction - truth` in the interior (4 pixels from the border), relative to the mean absolute
/// error. A network without phase bias scores near 0.
pub fn phase_spread(prediction: &Array4<f32>, truth: &Array4<f32>) -> f64 {
    let (_, h, w, _) = prediction.dim();
    let mut sums = [[0.0f64; 2]; 2];
    let mut counts = [[0usize; 2]; 2];
    let mut abs = 0.0;
    let mut n = 0usize;
    for ((b, i, j, c), &p) in prediction.indexed_iter() {
        if i < 4 || j < 4 || i + 4 >= h || j + 4 >= w {
            continue;
        }
        let e = (p - truth[[b, i, j, c]]) as f64;
        sums[i % 2][j % 2] += e;
        counts[i % 2][j % 2] += 1;
        abs += e.abs();
        n += 1;
    }
    let means: Vec<f64> = (0..4)
        .map(|k| sums[k / 2][k % 2] / counts[k / 2][k % 2].max(1) as f64)
        .collect();
    let spread = means.iter().cloned().fold(f64::MIN, f64::max)
        - means.iter().cloned().fold(f64::MAX, f64::min);
    spread / (abs / n.max(1) as f64).max(1e-12)
}

/// Checkerboard strength of a network: its response to a flat gray input, as the spread
/// (max - min) of the means of the four stride-2 phases of the interior. A flat input
/// should give a flat output; resize-then-convolve gives exactly 0 by construction.
pub fn flat_phase_imbalance(net: &Network) -> Result<f64> {
    let flat = Array4::<f32>::from_elem((1, 16, 16, 1), 0.5);
    let response = net.predict(&flat)?;
    Ok(phase_spread(&response, &Array4::zeros(response.raw_dim())) * mean_abs_interior(&response))
}

fn mean_abs_interior(a: &Array4<f32>) -> f64 {
    let (_, h, w, _) = a.dim();
    let interior = a.slice(s![.., 4..h - 4, 4..w - 4, ..]);
    interior.iter().map(|v| v.abs() as f64).sum::<f64>() / interior.len().max(1) as f64
}

/// Writes grayscale images side by side (each `[h, w]` in `[0, 1]`, scaled by `zoom`) as a
/// PNG: `rows` of panels.
pub fn write_png(path: &std::path::Path, rows: &[Vec<Array2<f32>>], zoom: usize) -> Result<()> {
    let file_error = |e: String| crate::ConvError::File {
        file: path.display().to_string(),
        message: e,
    };
    let (ph, pw) = rows
        .first()
        .and_then(|r| r.first())
        .map(|a| a.dim())
        .unwrap_or((1, 1));
    let cols = rows.iter().map(Vec::len).max().unwrap_or(1);
    let gap = 4;
    let width = cols * (pw * zoom + gap) + gap;
    let height = rows.len() * (ph * zoom + gap) + gap;
    let mut pixels = vec![255u8; width * height];
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            for ((y, x), &v) in img.indexed_iter() {
                let byte = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                for dy in 0..zoom {
                    for dx in 0..zoom {
                        let py = gap + r * (ph * zoom + gap) + y * zoom + dy;
                        let px = gap + c * (pw * zoom + gap) + x * zoom + dx;
                        pixels[py * width + px] = byte;
                    }
                }
            }
        }
    }
    let file = std::fs::File::create(path).map_err(|e| file_error(e.to_string()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder
        .write_header()
        .map_err(|e| file_error(e.to_string()))?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| file_error(e.to_string()))?;
    Ok(())
}
